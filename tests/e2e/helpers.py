"""What the browser journeys do on every page: fill a form, press a button that leads on, read the flash."""
from __future__ import annotations

from typing import Any


def fill_form(page: Any, fields: dict[str, str]) -> None:
    """Fill fields by selector: text inputs and textareas get the text, a <select> the option (value or label)."""
    for selector, value in fields.items():
        field = page.locator(selector)
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def submit(page: Any, selector: str) -> None:
    """Click a submit button (or link) and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def flash_ok(page: Any) -> str:
    """The page's success message; fails with the error messages when the page shows any."""
    assert page.locator(".flash-error").count() == 0, page.locator(".flash-error").all_inner_texts()
    return page.locator(".flash-success").first.inner_text()


def fill_scenario_form(page: Any, title: str, **fields: str) -> None:
    """The new-scenario form for the journeys' cold-chain logistics need; `fields` (by id) add to or override it."""
    fill_form(page, {"#title": title, "#industry": "smart_logistics",
                     "#description": "临空冷链仓库的温湿度传感器每分钟上报数据，现有告警规则误报多。",
                     "#contact_name": "王主任", "#contact_info": "029-3369 0001"}
              | {f"#{name}": value for name, value in fields.items()})
