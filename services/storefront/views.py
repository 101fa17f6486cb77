"""How the templates show things: money, stock, dates, pictures."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment

from services.kit.contracts import MAX_LINE_QUANTITY

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
FEW_LEFT = 5


def money(cents: int | None, currency: str | None) -> str:
    if cents is None:
        return "-"
    amount = f"{cents // 100:,}.{cents % 100:02d}"
    symbol = SYMBOLS.get(currency or "")
    return f"{symbol}{amount}" if symbol else f"{amount} {currency or ''}".strip()


def stock_text(stock: int) -> str:
    if stock <= 0:
        return "Out of stock"
    if stock <= FEW_LEFT:
        return f"Only {stock} left"
    return "In stock"


def picture_url(product: Any) -> str:
    return f"/pictures/{product.category}/{product.sku}.svg"


def when(moment: datetime) -> str:
    return moment.strftime("%-d %B %Y, %H:%M UTC")


def short_id(value: str) -> str:
    return value[-8:].upper()


def title(value: str) -> str:
    return value.replace("-", " ").capitalize()


def query_url(path: str, **params: Any) -> str:
    """``path`` with the parameters that have a value (the defaults are left out)."""
    kept = {k: v for k, v in params.items() if v not in (None, "") and not (k == "page" and v == 1)}
    if kept.get("sort") == "name":
        del kept["sort"]
    return f"{path}?{urlencode(kept)}" if kept else path


def register(environment: Environment) -> None:
    environment.filters.update(
        money=money,
        stock_text=stock_text,
        picture_url=picture_url,
        when=when,
        short_id=short_id,
        title_case=title,
    )
    environment.globals.update(
        few_left=FEW_LEFT, query_url=query_url, max_quantity=MAX_LINE_QUANTITY
    )
