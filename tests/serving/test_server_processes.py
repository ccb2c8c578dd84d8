"""`mmse serve --server_processes N`: N full servers on the same ports, all
stopped by one SIGTERM to the process that started them."""
import json
import os
import signal
import time
import urllib.request

import pytest

from serving import client
from serving import metrics
from serving import server
from tfx_pipeline import serve_process

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp*.
# Calls on new connections: all on one process is a chance of 2**-(CALLS-1).
CALLS = 20


def _listening_inodes(port: int) -> set:
  """Inodes of the sockets listening on `port` (gRPC's are IPv6 sockets
  taking IPv4 too)."""
  rows = []
  for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    with open(table, encoding="ascii") as f:
      rows += [line.split() for line in f.readlines()[1:]]
  return {row[9] for row in rows
          if int(row[1].rsplit(":", 1)[1], 16) == port and row[3] == _LISTEN}


def _socket_inodes(pid: int) -> set:
  inodes = set()
  for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
      target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
      continue  # Closed meanwhile.
    if target.startswith("socket:["):
      inodes.add(target[len("socket:["):-1])
  return inodes


def _children(pid: int) -> list:
  with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
    return [int(c) for c in f.read().split()]


def _scrape(rest_url: str) -> dict:
  with urllib.request.urlopen(rest_url + metrics.PATH, timeout=30) as r:
    return metrics.samples(r.read().decode("utf-8"))


def _gone(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  return False


def test_two_processes_answer_on_one_port_and_stop_on_sigterm(serving_dir):
  port, rest_port = serve_process.free_port(), serve_process.free_port()
  process = serve_process.start_server(
      serving_dir, port, rest_port,
      flags=(*serve_process.BATCHED, "--server_processes", "2"))
  try:
    address = f"127.0.0.1:{port}"
    serve_process.wait_until_available(address, process)
    # Each binds once its models are loaded; one may answer before the other.
    deadline = time.monotonic() + 300
    while (len(_listening_inodes(port)) < 2 or
           len(_listening_inodes(rest_port)) < 2):
      assert time.monotonic() < deadline and process.poll() is None
      time.sleep(0.5)
    grpc_sockets, rest_sockets = (_listening_inodes(port),
                                  _listening_inodes(rest_port))
    assert len(grpc_sockets) == 2 and len(rest_sockets) == 2
    # Its children: the two servers (and multiprocessing's helper).
    servers = [child for child in _children(process.pid)
               if _socket_inodes(child) & grpc_sockets]
    assert len(servers) == 2
    for child in servers:
      held = _socket_inodes(child)
      assert len(held & grpc_sockets) == 1 and len(held & rest_sockets) == 1
    assert client.query(address, "cordless drill", k=1)[0].item_id == "0100"
    # Each call a new connection, which the kernel gives either process;
    # a scrape, whichever answers it, counts the rows both ran.
    rest_url = f"http://127.0.0.1:{rest_port}"
    before = _scrape(rest_url)
    body = json.dumps({"instances": ["cordless drill"]}).encode()
    for _ in range(CALLS):
      with urllib.request.urlopen(urllib.request.Request(
          f"{rest_url}/v1/models/retrieval:predict", data=body),
                                  timeout=30) as response:
        assert response.status == 200
    after = _scrape(rest_url)
    assert metrics.growth(before, after, "mmse_batch_rows_sum",
                          model="retrieval",
                          signature="serving_default") == CALLS
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert all(_gone(child) for child in servers)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()


def test_server_processes_need_fixed_ports_and_at_least_one():
  with pytest.raises(ValueError, match="server_processes must be >= 1"):
    server.ServerOptions(server_processes=0)
  with pytest.raises(ValueError, match="needs fixed ports"):
    server.serve("unused", port=0, options=server.ServerOptions(
        server_processes=2))
