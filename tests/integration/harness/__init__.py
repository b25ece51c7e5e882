"""Integration-test harness for the real outrigger binary: process wrapper (Proxy), our recording
upstream (Upstream), raw-socket and curl clients, nginx and dnsmasq helpers, config builders."""
from .client import (ConnectionClosed, ProtocolError, RawConn, Response, build_request, chunked,
                     connect_refused, curl, get, read_to_close, request)
from .load import LoadClients
from .metrics import Metrics
from .proxy import Proxy, ProxyError, RssSampler, binary, sanitized, REPO
from .services import Dnsmasq, Nginx, dns_query, free_port
from .testcase import ProxyTestCase
from .upstream import (Blackhole, Upstream, closed_port, pattern_iter, pattern_sha256)
from . import metrics, yaml_out
