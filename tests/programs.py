"""Installs the programs the tests start (redis-server, php-fpm, Chromium) before the
suite runs: ``make test`` calls this, so that apt-get takes as long as it needs outside
any test's timeout. Each fixture still looks for its program, and installs it when its
tests run on their own."""

from __future__ import annotations

from chromium import ensure_chromium
from php_fpm import ensure_php_fpm
from redis_support import ensure_redis_server

if __name__ == "__main__":
    for ensure in (ensure_redis_server, ensure_php_fpm, ensure_chromium):
        ensure()
