"""AI+ Scenario Hub: create_app() factory; `python app.py` runs the whole platform on embedded defaults."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from challenges.views import api as challenges_api
from challenges.views import bp as challenges_bp
from evaluator.commands import register_commands as register_evaluator_commands
from evaluator.embedded import run_embedded
from evaluator.quota.views import api as quota_api
from evaluator.quota.views import bp as quota_bp
from evaluator.views import api as evaluator_api
from evaluator.views import bp as evaluator_bp
from hub.bodytime import BodyDeadline
from hub.cli import register_commands
from hub.config import load_config
from hub.i18n import init_i18n
from hub.models_registry import load_all
from hub.views import bp as auth_bp
from hub.web import init_web
from marketplace.views import api as marketplace_api
from marketplace.views import bp as marketplace_bp
from marketplace.views import home_page

ROOT = Path(__file__).resolve().parent


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    instance = (overrides or {}).get("INSTANCE_PATH") or os.environ.get("HUB_INSTANCE") or str(ROOT / "instance")
    app = Flask(__name__, instance_path=str(instance), template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"))
    app.config.update(load_config(app.instance_path, overrides))
    app.config["MAX_CONTENT_LENGTH"] = None  # uploads are capped per route while streaming

    init_i18n(app)
    init_web(app)
    app.wsgi_app = BodyDeadline(app.wsgi_app, app.config["BODY_IDLE_TIMEOUT"],  # type: ignore[method-assign]
                                app.config["BODY_TIMEOUT"])
    hops = app.config["PROXY_HOPS"]
    if hops:
        # Exactly the configured proxies are believed about the client's address and the scheme; the Host
        # header is the proxy's to pass on as it is (nginx: proxy_set_header Host $host).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)

    load_all()

    # quota_*: accelerator quota and 算力券
    for bp in (auth_bp, marketplace_bp, challenges_bp, evaluator_bp, quota_bp,
               marketplace_api, challenges_api, evaluator_api, quota_api):
        app.register_blueprint(bp)

    @app.get("/")
    def home():  # type: ignore[no-untyped-def]
        return home_page()

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return {"ok": True}

    register_commands(app)
    register_evaluator_commands(app)
    return app


def main() -> None:
    """Embedded defaults: SQLite under instance/, an own redis-server if REDIS_URL is unset, a worker."""
    run_embedded(create_app)


if __name__ == "__main__":
    main()
