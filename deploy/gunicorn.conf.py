"""gunicorn for the hub's web app, behind nginx (deploy/nginx): `gunicorn -c deploy/gunicorn.conf.py`.

Command-line flags override these values (the tests run it with `-w 1 --threads 2` on a free port).
Slow request bodies never reach these threads: nginx buffers every body first (deploy/nginx/hub-proxy.conf),
and the app cuts a body that still drags (HUB_BODY_IDLE_TIMEOUT, HUB_BODY_TIMEOUT; see hub/bodytime.py).
"""
import os

wsgi_app = "app:create_app()"
# Only nginx on the same machine talks to gunicorn.
bind = os.environ.get("HUB_WEB_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("HUB_WEB_WORKERS", "4"))
threads = int(os.environ.get("HUB_WEB_THREADS", "4"))
# A worker whose main loop is silent this long is restarted (gthread: not a per-request limit).
timeout = 120
graceful_timeout = 30
keepalive = 5
# Headers are small; nginx already refused anything larger.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# gunicorn's own reading of X-Forwarded-Proto (wsgi.url_scheme) trusts only the local proxy.
forwarded_allow_ips = "127.0.0.1"
accesslog = "-"
errorlog = "-"
