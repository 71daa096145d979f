"""Demo scenarios of the six new cities (themes as the 2021 research brief assigns them) and applications.

Everything goes through the real services, so the demo obeys the same rules as the product: history
events, audit lines, the first application opening the call.
"""
from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from hub.models import Organisation, User
from marketplace import applications as apps
from marketplace import scenarios
from marketplace.applications import ApplicationInput
from marketplace.models import Industry, ScenarioStatus
from marketplace.scenarios import ScenarioInput

S = ScenarioStatus
I = Industry  # noqa: E741 - short alias keeps the table readable

# (city, title, title_en, industry, final status, days to deadline, budget, description, outcome, indicators, data)
SCENARIOS: list[tuple[str, str, str, str, str, int, int | None, str, str, str, str]] = [
    ("konggang", "航空物流货量智能预测", "Air cargo volume forecasting", I.SMART_LOGISTICS, S.OPEN_CALL, 60, 800_000,
     "西安咸阳国际机场货运量逐年增长，货站排班、机位和地面运力仍凭经验安排。希望基于历史航班、货邮吞吐量、"
     "跨境电商订单与节假日等数据，按日、按航线预测未来 14 天的进出港货量。",
     "一套可在空港新城物流数据平台上运行的货量预测服务，每日自动更新预测，并给出置信区间。",
     "日级货量预测 MAPE ≤ 8%；重点航线（前 20）MAPE ≤ 12%；单次全量预测耗时 ≤ 10 分钟。",
     "2019—2025 年脱敏的航班与货邮吞吐量日数据、跨境电商订单汇总；经平台沙箱使用，不得导出原始数据。"),
    ("konggang", "临空冷链仓储温控异常智能预警", "Cold-chain warehouse temperature anomaly alerts",
     I.SMART_LOGISTICS, S.PUBLISHED, 75, 500_000,
     "临空冷链仓库存放生鲜和医药，温湿度传感器每分钟上报一次数据，但告警规则简单，误报多、漏报也时有发生。",
     "温控异常提前预警模型与告警分级策略，可对接现有 WMS 系统。",
     "提前 30 分钟以上预警的召回率 ≥ 90%；误报率较现有规则降低 50% 以上。",
     "3 个冷库 12 个月的传感器时序数据（约 2 亿条），含人工标注的历史事故记录。"),
    ("konggang", "航空货运安检X光图像违禁品智能识别", "Prohibited item detection in air cargo X-ray images",
     I.SMART_LOGISTICS, S.UNDER_REVIEW, 20, 1_200_000,
     "货运安检依赖人工判图，高峰期判图员压力大。希望借助智算中心算力训练违禁品检测模型，辅助判图。",
     "判图辅助系统：自动框出疑似违禁品并给出类别与置信度。",
     "mAP@0.5 ≥ 0.85；锂电池类召回率 ≥ 95%；单张图像推理 ≤ 200 毫秒（国产加速卡）。",
     "5 万张已标注的脱敏 X 光图像，仅在智算中心内使用。"),
    ("fengdong", "基层医疗机构胸部CT肺结节辅助诊断", "Lung nodule detection in chest CT for community clinics",
     I.SMART_HEALTH, S.OPEN_CALL, 90, 1_500_000,
     "沣东新城社区卫生服务中心已配备 CT，但缺少经验丰富的影像科医生。需要肺结节检出与良恶性风险分级的辅助诊断工具。",
     "部署在区域医学影像云上的辅助诊断服务，结果回写 PACS。",
     "结节检出敏感度 ≥ 95%（≥ 4 mm），平均每例假阳性 ≤ 1；风险分级 AUC ≥ 0.90。",
     "合作医院 3000 例脱敏胸部 CT 及病理随访结果；须签署数据使用协议，数据不出智算中心。"),
    ("fengdong", "12345政务热线工单智能分类与派发", "Smart routing of 12345 hotline tickets",
     I.PUBLIC_SERVICES, S.AWARDED, 30, 600_000,
     "12345 热线每天产生上千条工单，人工分类派发慢，部门间推诿时有发生。",
     "工单自动分类、派发建议与重复诉求合并功能，接入现有热线系统。",
     "一级分类准确率 ≥ 95%，派发部门 Top-3 命中率 ≥ 98%；重复诉求识别 F1 ≥ 0.9。",
     "近两年脱敏工单文本约 60 万条及其派发结果。"),
    ("fengdong", "社区居家养老跌倒智能监测", "Fall detection for elderly people living at home",
     I.SMART_HEALTH, S.DRAFT, 120, 300_000,
     "独居老人跌倒后常无法及时呼救。希望在不侵犯隐私的前提下（不采集可识别图像）实现跌倒监测。",
     "基于毫米波雷达或可穿戴设备的跌倒监测方案与社区告警平台对接。",
     "跌倒检出率 ≥ 95%，每户每周误报 ≤ 1 次。",
     "试点社区 50 户的雷达数据（采集中）。"),
    ("qinhan", "秦汉文化遗址游客客流预测与疏导", "Visitor flow forecasting at Qin–Han heritage sites",
     I.SMART_TOURISM, S.PUBLISHED, 45, 400_000,
     "节假日期间遗址公园入口拥堵，停车场与接驳车调度滞后。需要提前预测客流并给出疏导建议。",
     "客流预测与疏导建议看板，供景区管理方和交警使用。",
     "次日分时段客流预测误差（MAPE）≤ 15%；节假日峰值误差 ≤ 10%。",
     "三年闸机、票务和停车场数据；天气与节假日日历。"),
    ("qinhan", "汉代文物数字化修复与三维重建", "Digital restoration and 3D reconstruction of Han relics",
     I.DIGITAL_CULTURE, S.CLOSED, 15, 900_000,
     "大量汉代陶俑残片亟待修复，人工拼接效率低。希望利用三维扫描与深度学习辅助残片匹配与虚拟修复。",
     "残片匹配与虚拟修复工具，以及可用于数字文创产品的高精度三维模型。",
     "残片匹配 Top-5 准确率 ≥ 80%；重建模型精度 ≤ 0.1 mm。",
     "2000 件残片的三维扫描数据，版权归属博物馆。"),
    ("fengxi", "园区光伏发电功率预测", "PV power forecasting for industrial parks",
     I.SMART_ENERGY, S.OPEN_CALL, 60, 700_000,
     "沣西新城园区屋顶分布式光伏装机已超过 50 MW，出力波动影响园区微电网调度和储能充放电计划。",
     "未来 24 小时 15 分钟粒度的光伏功率预测服务，接入园区能源管理平台。",
     "日前预测归一化 RMSE ≤ 10%；超短期（4 小时）归一化 RMSE ≤ 6%。",
     "20 个光伏电站两年的 15 分钟功率数据与数值天气预报；按平台数据协议使用。"),
    ("fengxi", "智慧园区楼宇能耗异常检测与节能调控", "Building energy anomaly detection in smart parks",
     I.SMART_PARK, S.PUBLISHED, 50, 450_000,
     "园区 30 栋楼宇的空调、照明能耗居高不下，异常用能难以及时发现。",
     "能耗异常检测与空调群控节能策略，形成可复制的智慧园区方案。",
     "异常检测 F1 ≥ 0.85；试点楼宇综合节能率 ≥ 10%。",
     "楼宇分项计量数据（15 分钟粒度）与 BA 系统运行记录。"),
    ("jinghe", "新材料产线表面缺陷视觉检测", "Visual surface defect detection on new-material lines",
     I.SMART_MANUFACTURING, S.OPEN_CALL, 40, 1_000_000,
     "泾河新城新材料企业的薄膜产线依靠人工目检，漏检率高，速度跟不上产线。",
     "在线缺陷检测系统：实时识别划痕、气泡、杂质等 8 类缺陷并联动剔除。",
     "缺陷检出率 ≥ 99%，过杀率 ≤ 0.5%；产线速度 60 m/min 下实时处理。",
     "10 万张带标注的产线图像；企业数据，签署保密协议后使用。"),
    ("jinghe", "装备制造关键设备预测性维护", "Predictive maintenance of key manufacturing equipment",
     I.SMART_MANUFACTURING, S.UNDER_REVIEW, 25, 800_000,
     "数控机床主轴、轴承突发故障导致停产，计划外停机损失大。",
     "基于振动与电流信号的故障预测与剩余寿命估计系统。",
     "提前 72 小时故障预警准确率 ≥ 90%；剩余寿命预测误差 ≤ 15%。",
     "120 台设备一年的振动、电流与维修工单数据。"),
    ("energy_finance", "中小企业债券违约风险智能预警", "Default risk early warning for SME bonds",
     I.SMART_FINANCE, S.PUBLISHED, 70, 650_000,
     "能源金贸区聚集了大量金融机构，对中小企业债券的风险识别仍以人工研判为主。",
     "融合财务、舆情与工商数据的违约风险预警模型与可解释报告。",
     "提前 6 个月违约预警 AUC ≥ 0.85；报告需给出主要风险因子。",
     "公开债券与财报数据、合作机构提供的脱敏舆情数据。"),
    ("energy_finance", "绿色金融企业ESG信息智能抽取", "ESG information extraction for green finance",
     I.SMART_FINANCE, S.DRAFT, 100, None,
     "绿色信贷审批需要从企业年报和社会责任报告中人工摘录 ESG 指标，耗时长。",
     "ESG 指标自动抽取与核验工具。",
     "关键 ESG 指标抽取 F1 ≥ 0.9。",
     "500 份企业年报与社会责任报告（公开资料）。"),
]

CONTACTS = {
    "konggang": ("空港新城科创局 王主任", "029-3369 0001 / kjc@konggang.example"),
    "fengdong": ("沣东新城科创局 李科长", "029-3368 0002 / kjc@fengdong.example"),
    "qinhan": ("秦汉新城文旅局 张科长", "029-3367 0003 / wlj@qinhan.example"),
    "fengxi": ("沣西新城科创局 刘主任", "029-3366 0004 / kjc@fengxi.example"),
    "jinghe": ("泾河新城工信局 陈科长", "029-3365 0005 / gxj@jinghe.example"),
    "energy_finance": ("能源金贸区金融局 赵处长", "029-3364 0006 / jrj@energy.example"),
}
GOV = {"konggang": "gov.konggang@hub.example", "fengdong": "gov.fengdong@hub.example",
       "qinhan": "gov.qinhan@hub.example", "fengxi": "gov.fengxi@hub.example",
       "jinghe": "gov.jinghe@hub.example", "energy_finance": "gov.energy@hub.example"}

# scenario title -> [(team account, final application status, reason)]
APPLICATIONS: dict[str, list[tuple[str, str, str]]] = {
    "航空物流货量智能预测": [
        ("team.logistics@hub.example", "submitted", ""),
        ("team.qinchuang@hub.example", "submitted", ""),
        ("team.xjtu@hub.example", "rejected", "技术路线未说明如何处理跨境电商订单的突发波动，请补充后重新申报。"),
    ],
    "航空货运安检X光图像违禁品智能识别": [
        ("team.silkroad@hub.example", "accepted", "方案完整，指标可达，进入专家评审。"),
        ("team.nwpu@hub.example", "submitted", ""),
    ],
    "基层医疗机构胸部CT肺结节辅助诊断": [("team.xjtu@hub.example", "submitted", "")],
    "12345政务热线工单智能分类与派发": [
        ("team.qinchuang@hub.example", "accepted", "在同类热线已有落地案例，综合评分第一。"),
        ("team.nwpu@hub.example", "rejected", "未提供重复诉求合并的实现方案。"),
    ],
    "汉代文物数字化修复与三维重建": [("team.silkroad@hub.example", "withdrawn", "")],
    "园区光伏发电功率预测": [
        ("team.energy@hub.example", "submitted", ""),
        ("team.xjtu@hub.example", "accepted", "具备气象—功率联合建模经验，同意揭榜。"),
    ],
    "新材料产线表面缺陷视觉检测": [("team.silkroad@hub.example", "submitted", "")],
    "装备制造关键设备预测性维护": [("team.nwpu@hub.example", "accepted", "方案可行，进入现场测试。")],
}

NOTES = {S.PUBLISHED: "发榜", S.UNDER_REVIEW: "申报截止，进入形式审查与专家评审",
         S.AWARDED: "评审结果已公示，确定揭榜单位", S.CLOSED: "项目结束"}


def _proposal(title: str, org: Organisation) -> ApplicationInput:
    return ApplicationInput(
        proposal=f"{org.name}申报“{title}”。团队在相关领域有三年以上研发与落地经验，拟在智算中心完成模型训练与测试。",
        tech_route="数据清洗与特征工程 → 基线模型 → 深度学习模型（国产加速卡训练）→ 沙箱评测 → 现场试运行。",
        indicator_plan="逐项对照榜单技术指标给出验证方法：离线测试集评测、现场试运行 30 天、第三方复核。",
        budget_yuan=None)


def seed(session: Session, orgs: dict[str, Organisation], accounts: dict[str, User]) -> None:
    today = scenarios.district_today()
    by_title = {}
    for city, title, title_en, industry, final, days, budget, desc, outcome, indicators, data in SCENARIOS:
        gov = accounts[GOV[city]]
        contact_name, contact_info = CONTACTS[city]
        s = scenarios.create_scenario(session, gov, city, ScenarioInput(
            title=title, title_en=title_en, industry=industry, description=desc, expected_outcome=outcome,
            indicators=indicators, data_available=data, data_terms="仅限本榜单研发使用，不得转让或公开",
            budget_yuan=budget, reward="揭榜单位获项目资助，并可申请算力券（算力费用 50%，每年最高 300 万元）",
            deadline=today + timedelta(days=days), contact_name=contact_name, contact_info=contact_info))
        by_title[title] = (s, gov, final)
        if final != S.DRAFT:
            scenarios.change_status(session, gov, s.id, S.PUBLISHED, NOTES[S.PUBLISHED])

    for title, entries in APPLICATIONS.items():
        s, gov, _final = by_title[title]
        for email, status, reason in entries:
            team = accounts[email]
            a = apps.apply(session, team, s.id, _proposal(title, orgs_by_id(orgs)[team.org_id]), [], None)
            if status in ("accepted", "rejected"):
                apps.review(session, gov, a.id, "accept" if status == "accepted" else "reject", reason)
            elif status == "withdrawn":
                apps.withdraw(session, team, a.id)

    for s, gov, final in by_title.values():
        path = {S.OPEN_CALL: [S.OPEN_CALL], S.UNDER_REVIEW: [S.UNDER_REVIEW],
                S.AWARDED: [S.UNDER_REVIEW, S.AWARDED], S.CLOSED: [S.CLOSED]}.get(final, [])
        for step in path:
            if s.status != step:
                scenarios.change_status(session, gov, s.id, step, NOTES.get(step, ""))


def orgs_by_id(orgs: dict[str, Organisation]) -> dict[int, Organisation]:
    return {o.id: o for o in orgs.values()}
