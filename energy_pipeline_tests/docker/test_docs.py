"""docs/deploy.md names only things that exist: services, volumes, variables, assets, commands."""

from __future__ import annotations

import re

from energy_pipeline_tests.docker.conftest import DEV_COMPOSE, PROD_COMPOSE, ROOT, load_yaml

DEPLOY_MD = ROOT / "docs" / "deploy.md"


def test_deploy_guide_covers_the_operations():
    text = DEPLOY_MD.read_text()
    for needle in ("cp .env.example .env", "Long-lived access tokens", "LEGACY_SQLITE_PATH",
                   "legacy_energy_statistics", "pg_dump", "mongodump", "CHECKPOINT CREATE", "CHECKPOINT RELEASE",
                   "dagster instance migrate", "--env-file .env"):
        assert needle in text, needle


def test_deploy_guide_names_existing_services_and_volumes():
    text = DEPLOY_MD.read_text()
    prod, dev = load_yaml(PROD_COMPOSE), load_yaml(DEV_COMPOSE)
    for service in re.findall(r"\bdc (?:exec -T|exec|run --rm|restart|stop|logs -f|up -d|pull)\s+([a-z][a-z-]*)", text):
        assert service in prod["services"], f"`dc ... {service}`: no such service in the production file"
    volume_names = {spec["name"] for compose in (prod, dev) for spec in compose["volumes"].values()}
    for volume in set(re.findall(r"\benergy_pipeline_[a-z]+\b", text)):
        assert volume in volume_names, f"{volume}: no such volume"
    for image in (prod["services"][name]["image"] for name in ("postgres", "mongodb", "questdb")):
        assert f"`{image}`" in text, f"the guide's table lists another image than {image}"


def test_deploy_guide_variables_are_in_env_example():
    text = DEPLOY_MD.read_text()
    example = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.M))
    for name in set(re.findall(r"`([A-Z][A-Z0-9_]{3,})(?:=[^`]*)?`", text)):
        if name.startswith(("QDB_", "POSTGRES_")):  # settings of the database images
            continue
        assert name in example, f"{name} is not in .env.example"
