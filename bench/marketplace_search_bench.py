"""Scenario search on a large list: prints query times for Chinese terms, filters and sorts (SQLite or DATABASE_URL).

    .venv/bin/python bench/marketplace_search_bench.py [N_SCENARIOS]
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import Session  # noqa: E402

from hub.db import get_engine  # noqa: E402
from hub.models import Organisation, OrgKind  # noqa: E402
from hub.models_registry import load_all  # noqa: E402
from marketplace.models import Industry, Scenario  # noqa: E402
from marketplace.scenarios import district_today, search_scenarios, search_text_for  # noqa: E402

WORDS = ["光伏", "物流", "冷链", "温控", "货量", "预测", "缺陷", "检测", "能耗", "客流", "债券", "风险", "影像", "诊断"]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    engine = get_engine(url)
    load_all().metadata.create_all(engine)
    industries = list(Industry)
    with Session(engine) as session:
        cities = [Organisation(code=f"bench{i}", name=f"测试新城{i}", kind=OrgKind.CITY) for i in range(6)]
        session.add_all(cities)
        session.flush()
        t0 = time.perf_counter()
        for i in range(n):
            w1, w2 = WORDS[i % len(WORDS)], WORDS[(i * 7 + 3) % len(WORDS)]
            s = Scenario(city_id=cities[i % 6].id, title=f"{w1}{w2}场景{i}", industry=industries[i % len(industries)],
                         description=f"关于{w1}与{w2}的需求描述。" * 20, expected_outcome="成果", indicators="指标 ≥ 90%",
                         deadline=district_today(), contact_name="联系人", contact_info="029", status="published",
                         budget_yuan=(i * 7919) % 5_000_000)
            s.search_text = search_text_for(s, cities[i % 6])
            session.add(s)
        session.commit()
        print(f"inserted {n} scenarios in {time.perf_counter() - t0:.2f}s ({engine.dialect.name})")
        cases = [("q=光伏", {"q": "光伏"}), ("q=光伏 温控 (AND)", {"q": "光伏 温控"}), ("q=光伏, sort=budget", {"q": "光伏", "sort": "budget"}),
                 ("city+industry", {"city": "bench3", "industry": industries[3].value}), ("no filter, page 20", {"page": 20}),
                 ("q=不存在的词", {"q": "不存在的词"})]
        for label, kwargs in cases:
            times = []
            for _ in range(20):
                t = time.perf_counter()
                items, total = search_scenarios(session, None, per_page=10, **kwargs)
                times.append((time.perf_counter() - t) * 1000)
            print(f"{label:24} total={total:6d}  median {statistics.median(times):6.1f} ms  max {max(times):6.1f} ms")


if __name__ == "__main__":
    main()
