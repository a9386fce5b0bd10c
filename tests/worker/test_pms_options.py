"""`org add` options of the Halaxy and Nookal connectors: each mistake is one clear line."""

from __future__ import annotations

import pytest

from worker.errors import InvalidInput
from worker.services.orgs import NewOrganisation, validate


def _org(**pms) -> NewOrganisation:
    return NewOrganisation(
        slug="clinic-x", ptdirect="api", ptdirect_url="https://bridge.test", ptdirect_key="k", **pms
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"pms": "halaxy", "pms_client_id": "cid"},
            "--pms halaxy needs --pms-client-secret (from the Halaxy developer page's API key)",
        ),
        (
            {"pms": "halaxy"},
            "--pms halaxy needs --pms-client-id and --pms-client-secret (from the Halaxy developer page's API key)",
        ),
        (
            {"pms": "halaxy", "pms_client_id": "c", "pms_client_secret": "s", "pms_key": "k"},
            "--pms halaxy takes --pms-client-id and --pms-client-secret, not --pms-key",
        ),
        (
            {"pms": "halaxy", "pms_client_id": "c", "pms_client_secret": "s", "pms_token_url": "ftp://x"},
            "--pms-token-url must start with https:// (or http:// on this machine)",
        ),
        ({"pms": "nookal"}, "--pms nookal needs --pms-key (a Nookal API key, from Setup > API Keys)"),
        (
            {"pms": "nookal", "pms_key": "k", "pms_url": "https://api.nookal.com/production/v2?api_key=k"},
            "--pms-url must not contain a query string: give the key with --pms-key",
        ),
        ({"pms": "nookal", "pms_key": "k", "pms_client_id": "c"}, "--pms-client-id is only for --pms halaxy"),
        (
            {"pms": "cliniko", "pms_key": "k-au1", "pms_token_url": "https://t"},
            "--pms-token-url is only for --pms halaxy",
        ),
    ],
)
def test_a_wrong_halaxy_or_nookal_option_is_refused_with_one_line(options, message):
    # Given an organisation with one mistake in its PMS options; When it is validated
    with pytest.raises(InvalidInput) as refused:
        validate(_org(**options))
    # Then the error names the option and what is expected
    assert str(refused.value) == message


def test_complete_halaxy_and_nookal_options_are_accepted():
    validate(_org(pms="halaxy", pms_client_id="c", pms_client_secret="s"))
    validate(
        _org(
            pms="halaxy", pms_client_id="c", pms_client_secret="s", pms_url="https://nz-api.halaxy.test/main"
        )
    )
    validate(_org(pms="nookal", pms_key="k"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"pms": "csv", "pms_path": ".", "pms_key": "k"},
            "--pms-key is not used by --pms csv (it is for --pms cliniko, fhir, nookal, semble): leave it out",
        ),
        (
            {"pms": "csv", "pms_path": ".", "pms_url": "https://x.test"},
            "--pms-url is not used by --pms csv (it is for --pms cliniko, fhir, halaxy, nookal, semble): "
            "leave it out",
        ),
        (
            {"pms": "cliniko", "pms_key": "k-au1", "pms_path": "."},
            "--pms-path is not used by --pms cliniko (it is for --pms csv, export): leave it out",
        ),
        (
            {"pms": "cliniko", "pms_key": "k-au1", "ptdirect_path": "snapshot.json"},
            "--ptdirect-path is not used by --ptdirect api (it is for --ptdirect file): leave it out",
        ),
    ],
)
def test_an_option_the_chosen_connector_never_reads_is_refused_instead_of_stored(options, message):
    """Given `org add` with an option of another connector (a key for a CSV folder); When it is
    validated; Then it is refused, naming the option and the connectors that read it: stored, it
    would let the admin believe it is used."""
    with pytest.raises(InvalidInput) as refused:
        validate(_org(**options))
    assert str(refused.value) == message


def test_a_bridge_option_given_with_a_manual_ptdirect_is_refused():
    """Given PT Direct kept by hand (`--ptdirect manual`) and a bridge key as well; Then the key
    is refused (nothing would ever use it)."""
    new = NewOrganisation(slug="clinic-x", pms="csv", pms_path=".", ptdirect="manual", ptdirect_key="k")
    with pytest.raises(InvalidInput, match="--ptdirect-key is not used by --ptdirect manual"):
        validate(new)


def test_the_cli_takes_as_secrets_exactly_the_settings_the_service_keeps_secret():
    """Given the CLI's list of secret options (written out so `--help` stays quick) / Then it is
    the service's: a secret the CLI forgot would be typed on the command line, one the service
    forgot would be audited in clear."""
    from worker.commands.org_options import SECRET_FIELDS
    from worker.services.orgs import SECRET_SETTINGS

    assert SECRET_FIELDS == SECRET_SETTINGS
