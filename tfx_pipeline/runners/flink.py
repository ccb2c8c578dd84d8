"""Apache Flink for the pipeline's Beam stages: the pinned install and a
local session cluster.

`make flink` calls `fetch` once: Beam's Flink job server (its classpath from
Maven, `deploy/flink/pom.xml`) and a Flink distribution (the jars and
scripts of PyPI's `apache-flink` and `apache-flink-libraries` packages, at
the hashes of `deploy/flink/requirements.txt`) go into a cache directory,
never into the project's virtual environment; nothing is downloaded when a
pipeline runs.

`LocalCluster` is what `mmse run --beam flink` starts when no master is
given: a JobManager and a TaskManager with a slot per core, each a JVM of its
own, and a pool of Python SDK workers (`sdk_worker_pool`: processes, no
Docker), all stopped when the run ends, fails or is interrupted. Every Beam stage of the
pipeline is then a Flink job: Beam's `FlinkRunner` starts the job server
from the cached jar, which submits the stage to the cluster, whose
TaskManager runs the stage's Python in SDK workers taken from the pool.
"""
import contextlib
import glob
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from typing import Dict, List, Optional, Sequence

# The Flink release whose runner Beam's job server (deploy/flink/pom.xml)
# was built for; the distribution and the runner must agree on the minor.
FLINK_VERSION = "1.16.3"
# Where `make flink` puts the install; MMSE_FLINK_CACHE moves it.
CACHE_ENV = "MMSE_FLINK_CACHE"
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "mmse",
                             "flink")
# deploy/flink of this checkout: the job server's pom and Flink's pins.
DEPLOY_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))), "deploy", "flink")
JOB_SERVER_JAR = "beam-flink-job-server.jar"
_JOB_SERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"
# What Flink's JVMs (and the job server, through its manifest) need of Java
# 17's closed modules: Flink 1.16 reflects into these, as Flink 1.18's
# shipped configuration for Java 17 opens them.
_EXPORTS = ("java.base/sun.net.util", "java.rmi/sun.rmi.registry",
            "java.security.jgss/sun.security.krb5")
_OPENS = ("java.base/java.lang", "java.base/java.net", "java.base/java.io",
          "java.base/java.nio", "java.base/sun.nio.ch",
          "java.base/java.lang.reflect", "java.base/java.text",
          "java.base/java.time", "java.base/java.util",
          "java.base/java.util.concurrent",
          "java.base/java.util.concurrent.atomic",
          "java.base/java.util.concurrent.locks")
JAVA_OPTIONS = " ".join(
    ["-XX:+IgnoreUnrecognizedVMOptions"]
    + [f"--add-exports={m}=ALL-UNNAMED" for m in _EXPORTS]
    + [f"--add-opens={m}=ALL-UNNAMED" for m in _OPENS])
_READY_SECONDS = 180.0


class FlinkNotInstalled(FileNotFoundError):
  """The cached Flink install is missing: `make flink` fetches it."""


def cache_dir() -> str:
  return os.environ.get(CACHE_ENV) or DEFAULT_CACHE


def flink_home(cache: str = "") -> str:
  return os.path.join(cache or cache_dir(), f"flink-{FLINK_VERSION}")


def job_server_jar(cache: str = "") -> str:
  return os.path.join(cache or cache_dir(), "job-server", JOB_SERVER_JAR)


def require_install(cache: str = "") -> None:
  """Raises FlinkNotInstalled unless `fetch` has filled the cache."""
  for path in (os.path.join(flink_home(cache), "bin", "jobmanager.sh"),
               job_server_jar(cache)):
    if not os.path.exists(path):
      raise FlinkNotInstalled(
          f"{path} is missing: run `make flink` first (it fetches Flink "
          f"{FLINK_VERSION} and Beam's job server into {cache or cache_dir()}"
          f"; {CACHE_ENV} moves it)")


# --- fetching the install (`make flink`) -----------------------------------


def _run(command: Sequence[str], **kwargs) -> None:
  logging.info("$ %s", " ".join(command))
  subprocess.run(command, check=True, **kwargs)


def _manifest_jar(path: str, classpath: List[str]) -> None:
  """A jar holding only a manifest: the job server's main class, its
  classpath (relative to the jar) and the Java 17 module flags, so that
  `java -jar`, as Beam's FlinkRunner starts it, needs no other option."""
  def wrapped(name: str, value: str) -> str:
    line = f"{name}: {value}"
    return "\r\n ".join(line[i:i + 70] for i in range(0, len(line), 70))
  manifest = "\r\n".join([
      "Manifest-Version: 1.0",
      wrapped("Main-Class", _JOB_SERVER_MAIN),
      wrapped("Class-Path", " ".join(classpath)),
      wrapped("Add-Exports", " ".join(_EXPORTS)),
      wrapped("Add-Opens", " ".join(_OPENS)),
      "", ""])
  with zipfile.ZipFile(path, "w") as jar:
    jar.writestr("META-INF/MANIFEST.MF", manifest)


def fetch(cache: str = "", python: str = sys.executable) -> str:
  """Fills the cache (once): Beam's job server and Flink FLINK_VERSION.

  Returns the cache directory. The job server's jars come from Maven
  (`mvn dependency:copy-dependencies` on deploy/flink/pom.xml); Flink's
  scripts and jars from the sdists of `apache-flink` and
  `apache-flink-libraries`, taken with `pip download --require-hashes`
  and unpacked, not installed.
  """
  cache = cache or cache_dir()
  os.makedirs(cache, exist_ok=True)
  jar = job_server_jar(cache)
  if not os.path.exists(jar):
    lib = os.path.join(os.path.dirname(jar), "lib")
    _run(["mvn", "-q", "-f", os.path.join(DEPLOY_DIR, "pom.xml"),
          "dependency:copy-dependencies", f"-DoutputDirectory={lib}"])
    _manifest_jar(jar, sorted(
        f"lib/{name}" for name in os.listdir(lib) if name.endswith(".jar")))
  home = flink_home(cache)
  if not os.path.exists(os.path.join(home, "bin", "jobmanager.sh")):
    with tempfile.TemporaryDirectory(dir=cache) as staging:
      _run([python, "-m", "pip", "download", "-q", "--no-deps",
            "--no-binary=:all:", "--require-hashes", "-d", staging, "-r",
            os.path.join(DEPLOY_DIR, "requirements.txt")])
      for sdist in glob.glob(os.path.join(staging, "*.tar.gz")):
        with tarfile.open(sdist) as archive:
          archive.extractall(staging)  # Our pinned, hash-checked sdists.
      assembled = os.path.join(staging, "flink")
      # bin/ and conf/ come with apache-flink, the jars with the libraries.
      for part in ("bin", "conf", "lib", "opt", "plugins"):
        for source in glob.glob(os.path.join(staging, "apache-flink*",
                                              "deps", part)):
          shutil.copytree(source, os.path.join(assembled, part),
                          dirs_exist_ok=True)
      shutil.rmtree(home, ignore_errors=True)
      os.rename(assembled, home)
  require_install(cache)
  return cache


# --- a local session cluster ------------------------------------------------


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _flink_conf(rest_port: int, rpc_port: int, slots: int) -> Dict[str, str]:
  return {
      "jobmanager.rpc.address": "localhost",
      "jobmanager.rpc.port": str(rpc_port),
      "jobmanager.bind-host": "localhost",
      "taskmanager.bind-host": "localhost",
      "taskmanager.host": "localhost",
      "rest.address": "localhost",
      "rest.bind-address": "localhost",
      "rest.port": str(rest_port),
      "jobmanager.memory.process.size": "1024m",
      "taskmanager.memory.process.size": "4096m",
      # Beam's data plane to the SDK workers (gRPC over Netty) buffers
      # outside Flink's managed memory, in direct memory.
      "taskmanager.memory.task.off-heap.size": "768m",
      "taskmanager.memory.framework.off-heap.size": "256m",
      "taskmanager.numberOfTaskSlots": str(slots),
      "parallelism.default": str(slots),
      # A Beam stage's fused operators each take network buffers; Flink's
      # default share is too small for the pipeline's widest stages.
      "taskmanager.memory.network.fraction": "0.3",
      "taskmanager.memory.network.min": "256mb",
      "taskmanager.memory.network.max": "1gb",
      # A blocking shuffle takes this many buffers per result partition
      # (512 by default); the pipeline's widest stage (Transform's analysis)
      # runs dozens of them at once.
      "taskmanager.network.sort-shuffle.min-buffers": "64",
      # The Python SDK workers hold the data, outside the JVM.
      "taskmanager.memory.managed.fraction": "0.1",
      # Beam's runner classes from the cluster's classpath (`_beam_classpath`),
      # not each job's: only then does a job keep its SDK workers from one
      # stage to the next instead of starting new ones for each task.
      # (All of them parent-first: Beam's classes and those they hand
      # objects of, such as joda-time's, must come from one loader.)
      "classloader.resolve-order": "parent-first",
      "env.java.opts": JAVA_OPTIONS,
  }


class LocalCluster:
  """A Flink session cluster on this machine, and the SDK worker pool.

  Use as a context manager: the processes start on entry and are stopped on
  exit, whether the body ended, raised, was interrupted (Ctrl-C) or was
  sent SIGTERM. `master` and `worker_pool` are the endpoints to give Beam.
  """

  def __init__(self, work_dir: str, slots: int = 2, cache: str = ""):
    self._work_dir = os.path.abspath(work_dir)
    self._slots = slots
    self._cache = cache or cache_dir()
    self._processes: List[subprocess.Popen] = []
    self._log_files = []
    self.rest_port = 0
    self.worker_pool_port = 0
    self._previous_sigterm = None

  @property
  def master(self) -> str:
    return f"localhost:{self.rest_port}"

  @property
  def worker_pool(self) -> str:
    return f"localhost:{self.worker_pool_port}"

  @property
  def pids(self) -> List[int]:
    return [p.pid for p in self._processes]

  def beam_args(self) -> List[str]:
    """Flags that point the `flink` Beam profile at this cluster."""
    return [f"--flink_master={self.master}",
            f"--environment_config={self.worker_pool}",
            f"--parallelism={self._slots}",
            f"--sdk_worker_parallelism={self._slots}"]

  def _start(self, name: str, command: List[str], env: Dict[str, str]):
    log_path = os.path.join(self._work_dir, "log", f"{name}.out")
    log = open(log_path, "ab")  # pylint: disable=consider-using-with
    self._log_files.append(log)
    # A session of its own: a Ctrl-C at the terminal reaches `mmse run`,
    # which then stops these in order, instead of racing them.
    self._processes.append(subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env,
        cwd=self._work_dir, start_new_session=True))
    logging.info("Flink: started %s (pid %d), log %s", name,
                 self._processes[-1].pid, log_path)

  def start(self) -> "LocalCluster":
    require_install(self._cache)
    conf_dir = os.path.join(self._work_dir, "conf")
    os.makedirs(conf_dir, exist_ok=True)
    os.makedirs(os.path.join(self._work_dir, "log"), exist_ok=True)
    home = flink_home(self._cache)
    for name in glob.glob(os.path.join(home, "conf", "log4j*.properties")):
      shutil.copy(name, conf_dir)
    self.rest_port, rpc_port = free_port(), free_port()
    self.worker_pool_port = free_port()
    with open(os.path.join(conf_dir, "flink-conf.yaml"), "w",
              encoding="utf-8") as f:
      for key, value in _flink_conf(self.rest_port, rpc_port,
                                    self._slots).items():
        f.write(f"{key}: {value}\n")
    env = dict(os.environ, FLINK_CONF_DIR=conf_dir,
               FLINK_LOG_DIR=os.path.join(self._work_dir, "log"),
               # Flink's scripts add this to the JVMs' classpath.
               HADOOP_CLASSPATH=_beam_classpath(self._cache))
    self._previous_sigterm = _raise_on_sigterm()
    try:
      self._start("jobmanager", [os.path.join(home, "bin", "jobmanager.sh"),
                                 "start-foreground"], env)
      self._start("taskmanager", [os.path.join(home, "bin", "taskmanager.sh"),
                                  "start-foreground"], env)
      self._start("sdk-worker-pool", [
          sys.executable, "-m", "tfx_pipeline.runners.sdk_worker_pool",
          f"--service_port={self.worker_pool_port}"], dict(os.environ))
      self._wait_until_ready()
    except BaseException:
      self.stop()
      raise
    return self

  def overview(self) -> Optional[dict]:
    """The cluster's REST overview, or None while it does not answer."""
    try:
      with urllib.request.urlopen(
          f"http://{self.master}/overview", timeout=2) as response:
        return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
      return None

  def _wait_until_ready(self) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    while time.monotonic() < deadline:
      for process in self._processes:
        if process.poll() is not None:
          raise RuntimeError(
              f"Flink: {' '.join(process.args[:2])} exited with "
              f"{process.returncode} while starting; see "
              f"{os.path.join(self._work_dir, 'log')}")
      overview = self.overview()
      if (overview and overview.get("slots-total", 0) >= self._slots and
          _port_open(self.worker_pool_port)):
        logging.info("Flink: session cluster %s ready (Flink %s, %d slots)",
                     self.master, overview.get("flink-version"),
                     overview["slots-total"])
        return
      time.sleep(0.5)
    raise RuntimeError(
        f"Flink: the local cluster did not come up in {_READY_SECONDS:.0f} s;"
        f" see {os.path.join(self._work_dir, 'log')}")

  def stop(self) -> None:
    """Stops every process (SIGTERM to its group, then SIGKILL)."""
    for process in reversed(self._processes):
      _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in reversed(self._processes):
      try:
        process.wait(timeout=max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()
      # The pool's SDK workers share its group; end stragglers too.
      _signal_group(process, signal.SIGKILL)
    for log in self._log_files:
      log.close()
    self._log_files = []
    if self._processes:
      logging.info("Flink: local cluster stopped")
    self._processes = []
    if self._previous_sigterm is not None:
      signal.signal(signal.SIGTERM, self._previous_sigterm)
      self._previous_sigterm = None

  def __enter__(self) -> "LocalCluster":
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()


def _beam_classpath(cache: str) -> str:
  """The job server's jars that Flink's own distribution lacks: Beam's
  runner and what it needs, less Flink itself and the logging bindings."""
  lib = os.path.join(os.path.dirname(job_server_jar(cache)), "lib")
  return os.pathsep.join(
      os.path.join(lib, name) for name in sorted(os.listdir(lib))
      if name.endswith(".jar") and
      not name.startswith(("flink-", "slf4j-", "log4j")))


def _port_open(port: int) -> bool:
  with socket.socket() as s:
    return s.connect_ex(("127.0.0.1", port)) == 0


def _signal_group(process: subprocess.Popen, sig: int) -> None:
  with contextlib.suppress(ProcessLookupError, PermissionError):
    os.killpg(process.pid, sig)


def _raise_on_sigterm():
  """SIGTERM raises SystemExit, so that `finally` blocks stop the cluster.

  Returns the handler it replaced (None off the main thread, where signal
  handlers cannot be set).
  """
  def handler(signum, frame):  # pylint: disable=unused-argument
    raise SystemExit(128 + signum)
  try:
    return signal.signal(signal.SIGTERM, handler)
  except ValueError:
    return None


def main(argv: Sequence[str]) -> int:
  """`python -m tfx_pipeline.runners.flink fetch`: what `make flink` runs."""
  if list(argv) != ["fetch"]:
    print("usage: python -m tfx_pipeline.runners.flink fetch", file=sys.stderr)
    return 2
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  print(f"Flink {FLINK_VERSION} and Beam's job server are in {fetch()}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
