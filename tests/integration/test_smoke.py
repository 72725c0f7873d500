import http.client


def test_serves_index(start_monkey, docroot):
    from support import site
    server = start_monkey(sites={"default": site("127.0.0.1", docroot)})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == b"<h1>home</h1>\n"
    conn.request("HEAD", "/index.html")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == "14"
    assert resp.read() == b""
