"""`mmse query`: top hits over gRPC, their formatting, and its errors."""
import pytest

from serving import client
from serving import server
from tests.fixtures import toy_serving


@pytest.fixture(scope="module")
def address(serving_dir):
  running = server.start(serving_dir, server.ServerOptions(port=0))
  yield f"127.0.0.1:{running.port}"
  running.stop()


def test_query_returns_the_top_hits_with_titles(address):
  hits = client.query(address, "cordless drill", k=2)
  assert [h.item_id for h in hits][:1] == ["0100"]
  assert hits[0].title == "cordless drill" and len(hits) == 2
  assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_format_hits_has_a_header_and_a_line_per_hit(address):
  hits = client.query(address, "cordless drill", k=2)
  lines = client.format_hits(hits).splitlines()
  assert len(lines) == 3 and "cordless drill" in lines[1]


def test_k_beyond_the_served_k_is_refused(address):
  with pytest.raises(ValueError, match=f"k must be in 1..{toy_serving.K}"):
    client.query(address, "drill", k=toy_serving.K + 1)


def test_unreachable_server_is_a_connection_error():
  with pytest.raises(ConnectionError):
    client.query("127.0.0.1:1", "drill", timeout_s=2)
