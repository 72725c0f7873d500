# Each target bootstraps .venv on a machine with nothing installed by hand and
# reinstalls the project whenever its packaging files change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONF ?= etc/monkey

.PHONY: run test bench check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=64" wheel

EXAMPLES := $(wildcard docs/examples/*/setup.cfg)

$(STAMP): $(BIN)/python setup.cfg pyproject.toml $(EXAMPLES)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	for f in $(EXAMPLES); do $(BIN)/python -m pip install --quiet -e "$$(dirname $$f)" || exit 1; done
	touch $(STAMP)

# The PHP page of etc/monkey needs php-fpm: when it is installed, `make run` starts it
# with $(CONF)/plugins/fastcgi/php-fpm.conf, as this user, for as long as monkey runs.
PHP_FPM := $(lastword $(sort $(wildcard /usr/sbin/php-fpm*)))
FPM_CONF := $(CONF)/plugins/fastcgi/php-fpm.conf

# The HTTPS listener of etc/monkey (2443) serves a self-signed certificate for localhost,
# generated here when it is missing or about to expire; it is not kept in git.
CERT_DIR := $(CONF)/plugins/tls/self-signed

run: $(STAMP)
	@if [ -f "$(CONF)/plugins/tls/tls.conf" ] && ! openssl x509 -checkend 86400 -noout \
	        -in "$(CERT_DIR)/server.crt" >/dev/null 2>&1; then \
	    mkdir -p "$(CERT_DIR)" && openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
	        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	        -keyout "$(CERT_DIR)/server.key" -out "$(CERT_DIR)/server.crt" 2>/dev/null \
	    && echo "make run: generated a self-signed certificate for localhost in $(CERT_DIR)" \
	    || { echo "make run: cannot generate the certificate of port 2443: is openssl installed?"; exit 1; }; \
	fi
	@if [ -n "$(PHP_FPM)" ] && [ -f "$(FPM_CONF)" ]; then \
	    MONKEY_PHP_USER=$$(id -un) MONKEY_PHP_GROUP=$$(id -gn) $(PHP_FPM) --nodaemonize \
	        --fpm-config "$(FPM_CONF)" $$([ "$$(id -u)" = 0 ] && echo --allow-to-run-as-root) & \
	    fpm=$$!; trap 'kill $$fpm 2>/dev/null' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	    for i in $$(seq 50); do $(BIN)/python -c 'import socket; \
	        socket.create_connection(("127.0.0.1", 2004), 0.2)' 2>/dev/null && break; sleep 0.1; done; \
	elif [ -f "$(FPM_CONF)" ]; then \
	    echo "make run: php-fpm is not installed, so /hello.php will answer 503 (apt-get install php-fpm)"; \
	fi; \
	$(BIN)/monkey -c $(CONF)

check: $(STAMP)
	$(BIN)/monkey check -c $(CONF)

# The programs the tests start are installed first (tests/programs.py), outside the tests'
# timeouts: apt-get on a fresh machine may take longer than a test may.
test: $(STAMP)
	$(BIN)/python tests/programs.py
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
