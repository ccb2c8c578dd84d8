"""The Kubernetes manifest serves the three pushed models from its volume."""
import pathlib

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from contracts import serving_layout

MANIFEST = (pathlib.Path(__file__).resolve().parents[2] / "deploy" / "k8s" /
            "serving.yaml")


def test_manifest_config_lists_the_served_models_under_the_mount():
  resources = {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}
  assert set(resources) == {"ConfigMap", "PersistentVolumeClaim", "Deployment",
                            "Service"}
  config_text = resources["ConfigMap"]["data"][serving_layout.MODELS_CONFIG]
  config = text_format.Parse(config_text,
                             model_server_config_pb2.ModelServerConfig())
  container = resources["Deployment"]["spec"]["template"]["spec"][
      "containers"][0]
  mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
  assert [(c.name, c.base_path) for c in config.model_config_list.config] == [
      (name, f"{mounts['models']}/{name}")
      for name in serving_layout.SERVED_MODELS
  ]
  assert (f"--model_config_file=/config/{serving_layout.MODELS_CONFIG}" in
          container["args"])
  assert mounts["config"] == "/config"
  ports = {p["port"] for p in resources["Service"]["spec"]["ports"]}
  assert ports == {8500, 8501}
