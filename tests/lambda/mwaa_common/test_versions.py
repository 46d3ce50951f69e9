import pytest

from mwaa_common import versions as v


@pytest.mark.parametrize(
    "source,target,path",
    [
        ("2.10.3", "2.11.0", "in_place"),
        ("2.7.2", "2.10.3", "in_place"),
        ("2.11.0", "3.0.6", "in_place"),
        ("2.11.2", "3.0.6", "in_place"),
        ("2.10.3", "3.0.6", "new_environment"),
        ("2.7.2", "3.0.6", "new_environment"),
        ("3.0.6", "2.11.0", "in_place"),
        ("3.0.6", "2.10.3", "refused"),
        ("2.11.0", "2.10.3", "refused"),
        ("2.10.3", "2.10.3", "new_environment"),
        ("1.10.12", "2.7.2", "new_environment"),
        ("2.7.2", "1.10.12", "refused"),
        ("1.10.12", "1.10.12", "refused"),
    ],
)
def test_upgrade_paths(source, target, path):
    assert v.upgrade_path(source, target).path == path


def test_unknown_version_lists_known_ones():
    with pytest.raises(v.VersionError, match=r"unknown Airflow version '2\.6\.3'.*2\.7\.2"):
        v.upgrade_path("2.6.3", "2.7.2")


def test_not_a_version():
    with pytest.raises(v.VersionError, match="not a version number"):
        v.parse("latest")


def test_retired_version_is_not_creatable():
    with pytest.raises(v.VersionError, match="retired"):
        v.check_creatable("1.10.12")
    v.check_creatable("3.0.6")


@pytest.mark.parametrize(
    "cls,kwargs,msg",
    [
        ("mw1.micro", {"schedulers": 2}, r"schedulers=2 is outside mw1\.micro's schedulers range 1\.\.1"),
        ("mw1.micro", {"max_workers": 3}, r"max_workers=3 .* range 1\.\.1"),
        ("mw1.small", {"min_webservers": 1}, r"min_webservers=1 .* 2\.\.5"),
        ("mw1.small", {"min_workers": 5, "max_workers": 2}, r"min_workers=5 is greater than max_workers=2"),
        ("mw2.huge", {}, r"unknown environment class 'mw2\.huge'; allowed: mw1\.micro"),
    ],
)
def test_class_limits(cls, kwargs, msg):
    with pytest.raises(v.VersionError, match=msg):
        v.check_class(cls, **kwargs)


def test_class_limits_accept_valid_values():
    v.check_class("mw1.micro", schedulers=1, min_workers=1, max_workers=1, min_webservers=1, max_webservers=1)
    v.check_class("mw1.large", schedulers=3, min_workers=2, max_workers=25, min_webservers=2, max_webservers=5)


def test_every_row_has_the_same_fields():
    fields = {frozenset(row) for row in v.VERSIONS.values()}
    assert len(fields) == 1
