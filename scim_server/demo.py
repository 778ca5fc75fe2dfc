"""A realistic Danish organisation for demos and for trying plan2learn's master data.

"Solbjerg Kommune": five levels of org units (municipality, administrations,
departments, institutions, teams), a few thousand employees with Danish names,
managers following the tree, EANs on the units that invoice, employments with
start dates, some leavers and future starters, and external users (citizens,
volunteers) with no org unit and no manager. Deterministic for a given seed.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlalchemy.orm import Session
from stdnum import ean as gs1_ean

from .scim.schemas import ENTERPRISE_USER
from .storage import derived, emails, hierarchy, leavers
from .storage.models import Group, Membership, User, utcnow

FIRST = ["Søren", "Mette", "Jørgen", "Birgitte", "Anders", "Lærke", "Mads", "Ida", "Frederik", "Signe",
         "Rasmus", "Maja", "Æbbe", "Åse", "Bjørn", "Kirsten", "Niels", "Hanne", "Jens", "Lone", "Morten",
         "Pernille", "Thomas", "Camilla", "Christian", "Louise", "Mikkel", "Sofie", "Henrik", "Anne",
         "Øystein", "Gry", "Torben", "Karen", "Ulrik", "Trine", "Asger", "Helle", "Emil", "Freja"]
LAST = ["Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
        "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Christiansen",
        "Poulsen", "Johansen", "Møller", "Mortensen", "Østergaard", "Dalgård", "Kjærgaard", "Lund",
        "Holm", "Bækgaard", "Frølund", "Skovgård", "Brøndum", "Højgaard"]
TREE = {
    "Børn og Unge": {
        "Skoler": ["Solbjerg Skole", "Åbyhøj Skole", "Lystrup Skole", "Tranbjerg Skole"],
        "Dagtilbud": ["Børnehuset Mælkebøtten", "Vuggestuen Søstjernen", "Dagplejen Øst"],
        "PPR": ["Psykologer", "Tale-hørelærere"],
    },
    "Sundhed og Omsorg": {
        "Plejehjem": ["Plejehjemmet Solgården", "Plejehjemmet Egebakken", "Plejecenter Bøgely"],
        "Hjemmepleje": ["Hjemmeplejen Nord", "Hjemmeplejen Syd"],
        "Sundhedscentret": ["Genoptræning", "Forebyggelse"],
    },
    "Teknik og Miljø": {
        "Vej og Park": ["Vejdrift", "Grønne områder"],
        "Byggeri": ["Byggesag", "Planlægning"],
    },
    "Borgerservice og Økonomi": {
        "Borgerservice": ["Borgerservice Centrum", "Ydelseskontoret"],
        "Økonomi": ["Løn og Personale", "Regnskab"],
        "IT": ["Drift", "Udvikling"],
    },
    "Kultur og Fritid": {
        "Biblioteker": ["Hovedbiblioteket", "Filial Åbyhøj"],
        "Idræt": ["Solbjerg Idrætscenter", "Svømmehallen"],
    },
}
TEAMS = ["Team A", "Team B", "Team C"]
TITLES = {"company": "Kommunaldirektør", "division": "Direktør", "department": "Afdelingschef",
          "institution": "Leder", "team": "Teamleder"}
STAFF_TITLES = ["Pædagog", "Lærer", "Social- og sundhedshjælper", "Sygeplejerske", "Sagsbehandler",
                "Konsulent", "Fysioterapeut", "Bibliotekar", "Ingeniør", "Specialist", "Administrativ medarbejder"]


def make_ean(rng: random.Random) -> str:
    body = "579" + "".join(rng.choice("0123456789") for _ in range(9))
    return body + gs1_ean.calc_check_digit(body)


@dataclass
class Unit:
    id: str
    name: str
    code: str
    kind: str
    parent: Unit | None
    ean: str | None = None
    leader: str | None = None
    children: list[Unit] = field(default_factory=list)


@dataclass
class Summary:
    units: int
    employees: int
    externals: int
    leavers: int
    future_starters: int


def load(session: Session, tenant_id: int, employees: int = 3000, externals: int = 300, seed: int = 2026) -> Summary:
    rng = random.Random(seed)
    now = utcnow()
    units = _units(rng)
    _insert_units(session, tenant_id, units, now)
    used_names: set[str] = set()
    users, memberships = [], []
    counts = {"leavers": 0, "future": 0}

    def person(kind: str) -> tuple[str, str, str]:
        while True:
            given, family = rng.choice(FIRST), rng.choice(LAST)
            base = f"{given}.{family}".lower().replace(" ", "")
            user_name = f"{base}{rng.randint(1, 999)}@solbjerg.dk" if kind == "employee" else \
                f"{base}{rng.randint(1, 999)}@borger.dk"
            if user_name not in used_names:
                used_names.add(user_name)
                return user_name, given, family

    def add_user(unit: Unit | None, title: str, manager: str | None, kind: str = "employee") -> str:
        user_name, given, family = person(kind)
        user_id = str(uuid.uuid4())
        attributes = {
            "name": {"givenName": given, "familyName": family, "formatted": f"{given} {family}"},
            "emails": [{"value": user_name, "type": "work" if kind == "employee" else "home", "primary": True}],
            "userType": "Employee" if kind == "employee" else "External",
            "preferredLanguage": "da", "locale": "da-DK", "timezone": "Europe/Copenhagen",
        }
        if kind == "employee":
            attributes["title"] = title
            attributes["phoneNumbers"] = [{"value": f"+45 {rng.randint(20000000, 99999999)}", "type": "mobile"}]
            attributes[ENTERPRISE_USER] = {"employeeNumber": str(10000 + len(users)),
                                           "department": unit.name, "organization": "Solbjerg Kommune"}
        else:
            attributes["addresses"] = [{"type": "home", "streetAddress": f"{rng.choice(LAST)}vej {rng.randint(1, 120)}",
                                        "postalCode": str(rng.randint(8000, 8400)), "locality": "Solbjerg",
                                        "country": "DK", "primary": True}]
        users.append({"id": user_id, "tenant_id": tenant_id, "user_name": user_name, "external_id": None,
                      "display_name": f"{given} {family}", "active": True, "manager_id": manager,
                      "attributes": attributes, "created": now, "last_modified": now, "version": 1})
        if unit is not None:
            start = now - dt.timedelta(days=rng.randint(30, 9000))
            end = None
            roll = rng.random()
            if roll < 0.04:
                end = now - dt.timedelta(days=rng.randint(1, 365))
                counts["leavers"] += 1
            elif roll < 0.05:
                start = now + dt.timedelta(days=rng.randint(5, 60))
                counts["future"] += 1
            memberships.append({"tenant_id": tenant_id, "group_id": unit.id, "user_id": user_id,
                                "title": title, "start_date": start, "end_date": end, "is_primary": True,
                                "created": now})
        return user_id

    flat = list(_walk(units))
    for unit in flat:  # leaders first, top-down, so each reports to the leader above
        unit.leader = add_user(unit, TITLES[unit.kind], unit.parent.leader if unit.parent else None)
    leaves = [u for u in flat if u.kind in ("team", "institution") and not u.children]
    while len(users) < employees:
        unit = rng.choice(leaves)
        add_user(unit, rng.choice(STAFF_TITLES), unit.leader)
    for _ in range(externals):
        add_user(None, "", None, kind="external")
    for start in range(0, len(users), 1000):
        session.execute(insert(User), users[start:start + 1000])
    for start in range(0, len(memberships), 1000):
        session.execute(insert(Membership), memberships[start:start + 1000])
    hierarchy.refresh_effective_ean(session, units.id)
    # rows inserted here, not by the write service: what it keeps beside them is made here too
    derived.store_chosen_units(session, tenant_id=tenant_id)
    emails.store_tenant(session, tenant_id)
    leavers.evaluate(session, tenant_id=tenant_id)
    return Summary(len(flat), len(users) - externals, externals, counts["leavers"], counts["future"])


def _units(rng: random.Random) -> Unit:
    root = Unit(str(uuid.uuid4()), "Solbjerg Kommune", "SK", "company", None, ean=make_ean(rng))
    for i, (division, departments) in enumerate(TREE.items(), 1):
        d = Unit(str(uuid.uuid4()), division, f"SK-{i}", "division", root, ean=make_ean(rng))
        root.children.append(d)
        for j, (department, institutions) in enumerate(departments.items(), 1):
            dep = Unit(str(uuid.uuid4()), department, f"SK-{i}.{j}", "department", d)
            d.children.append(dep)
            for k, institution in enumerate(institutions, 1):
                inst = Unit(str(uuid.uuid4()), institution, f"SK-{i}.{j}.{k}", "institution", dep,
                            ean=make_ean(rng) if rng.random() < 0.4 else None)
                dep.children.append(inst)
                for t, team in enumerate(TEAMS[:rng.randint(1, 3)], 1):
                    inst.children.append(Unit(str(uuid.uuid4()), f"{institution} – {team}",
                                              f"SK-{i}.{j}.{k}.{t}", "team", inst))
    return root


def _walk(unit: Unit):
    yield unit
    for child in unit.children:
        yield from _walk(child)


def _insert_units(session: Session, tenant_id: int, root: Unit, now: dt.datetime) -> None:
    rows = [{"id": u.id, "tenant_id": tenant_id, "display_name": u.name, "external_id": u.code,
             "attributes": {}, "created": now, "last_modified": now, "version": 1, "is_org_unit": True,
             "unit_code": u.code, "unit_type": u.kind, "parent_id": u.parent.id if u.parent else None,
             "ean": u.ean} for u in _walk(root)]
    session.execute(insert(Group), rows)
