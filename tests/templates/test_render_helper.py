"""The Ruby helper behaves like the director's template context, so the job tests can be believed.

Each test renders the fixture job `demo`, whose template evaluates one Ruby
expression (demo.expression) in the template's binding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.templates.renderer import Link, RenderError, render, render_job

FIXTURE_JOBS = Path(__file__).with_name("fixtures") / "jobs"
UPSTREAM = Link(
    addresses=["10.1.0.1", "10.1.0.2"], properties={"up": {"secret": "s3"}}, from_job="demo-provider"
)


def evaluate(
    expression: str,
    properties: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    links: dict[str, Link] | None = None,
) -> str:
    props = {"demo": {"expression": expression, **(properties or {})}}
    return render(
        "demo",
        "expression.erb",
        props,
        spec=spec,
        links={"upstream": UPSTREAM} if links is None else links,
        jobs_dir=FIXTURE_JOBS,
    )


def test_p_returns_the_spec_default_when_unset() -> None:
    assert evaluate("p('demo.port')") == "4000"


def test_p_returns_the_manifest_value_over_the_default() -> None:
    assert evaluate("p('demo.port')", {"port": 4100}) == "4100"


def test_p_keeps_a_false_value_rather_than_treating_it_as_unset() -> None:
    assert evaluate("p('demo.nested.flag').inspect") == "false"
    assert evaluate("p('demo.nested.flag').inspect", {"nested": {"flag": True}}) == "true"


def test_p_of_an_undeclared_property_fails_with_its_name() -> None:
    with pytest.raises(RenderError, match=r"Can't find property 'demo\.nope'"):
        evaluate("p('demo.nope')")


def test_p_of_a_declared_property_without_default_or_value_fails() -> None:
    with pytest.raises(RenderError, match=r"Can't find property 'demo\.name'"):
        evaluate("p('demo.name')")


def test_p_with_a_default_argument_returns_it_for_an_unset_property() -> None:
    assert evaluate("p('demo.name', 'fallback')") == "fallback"


def test_p_with_a_list_of_names_takes_the_first_that_is_set() -> None:
    assert evaluate("p(['demo.name', 'demo.port'])") == "4000"


def test_if_p_yields_only_when_every_property_is_set() -> None:
    expr = "out = 'unset'; if_p('demo.name', 'demo.port') { |n, port| out = \"#{n}:#{port}\" }; out"
    assert evaluate(expr, {"name": "x"}) == "x:4000"
    assert evaluate(expr) == "unset"


def test_if_p_else_runs_when_a_property_is_unset() -> None:
    expr = "out = nil; if_p('demo.name') { out = 'set' }.else { out = 'else' }; out"
    assert evaluate(expr) == "else"
    assert evaluate(expr, {"name": "n"}) == "set"


def test_a_manifest_property_the_spec_does_not_declare_is_refused() -> None:
    with pytest.raises(RenderError, match=r"property 'demo\.typo' is not declared in demo's spec"):
        evaluate("1", {"typo": 1})


def test_a_map_valued_property_may_hold_any_keys() -> None:
    assert evaluate("p('demo.map')['anything']", {"map": {"anything": "ok"}}) == "ok"


def test_spec_has_the_instance_fields_and_takes_overrides() -> None:
    fields = (
        "[spec.address, spec.az, spec.bootstrap, spec.deployment, spec.index, spec.name, spec.ip].join(' ')"
    )
    assert evaluate(fields) == "10.0.0.10 z1 true postgres-service 0 demo 10.0.0.10"
    assert evaluate(fields, spec={"address": "a.b", "az": "z3", "bootstrap": False, "index": 2}).startswith(
        "a.b z3 false postgres-service 2"
    )
    assert evaluate("spec.networks.default.ip") == "10.0.0.10"
    assert evaluate("spec.id").count("-") == 4


def test_link_carries_the_providers_listed_properties_with_their_defaults() -> None:
    assert evaluate("link('upstream').p('up.port')") == "7000"
    assert evaluate("link('upstream').p('up.secret')") == "s3"


def test_link_hides_the_providers_unlisted_properties() -> None:
    with pytest.raises(RenderError, match=r"Can't find link property 'up\.private'"):
        evaluate("link('upstream').p('up.private')")


def test_link_p_of_an_unset_property_fails_unless_given_a_default() -> None:
    with pytest.raises(RenderError, match=r"up\.unset"):
        evaluate("link('upstream').p('up.unset')")
    assert evaluate("link('upstream').p('up.unset', 'dflt')") == "dflt"
    assert evaluate("x = 'no'; link('upstream').if_p('up.unset') { x = 'yes' }; x") == "no"


def test_link_instances_have_addresses_indexes_and_a_bootstrap() -> None:
    expr = (
        "link('upstream').instances.map { |i| [i.address, i.index, i.az, i.bootstrap].join('/') }.join(' ')"
    )
    assert evaluate(expr) == "10.1.0.1/0/z1/true 10.1.0.2/1/z2/false"


def test_link_address_is_the_group_address_when_the_director_gives_one() -> None:
    with_address = Link(addresses=["10.1.0.1"], from_job="demo-provider", group_address="q-s0.up.bosh")
    assert evaluate("link('upstream').address", links={"upstream": with_address}) == "q-s0.up.bosh"
    with pytest.raises(RenderError, match="no group address"):
        evaluate("link('upstream').address")


def test_if_link_runs_else_for_a_missing_optional_link() -> None:
    expr = "x = nil; if_link('sidecar') { x = 'present' }.else { x = 'absent' }; x"
    assert evaluate(expr) == "absent"
    sidecar = Link(addresses=["10.2.0.1"])
    assert evaluate(expr, links={"upstream": UPSTREAM, "sidecar": sidecar}) == "present"


def test_link_of_a_missing_optional_link_fails() -> None:
    with pytest.raises(RenderError, match="Can't find link 'sidecar'"):
        evaluate("link('sidecar')")


def test_a_link_the_spec_does_not_consume_is_refused() -> None:
    with pytest.raises(RenderError, match="Can't find link 'elsewhere'"):
        evaluate("link('elsewhere')")


def test_a_missing_required_link_is_refused_as_the_director_would() -> None:
    with pytest.raises(RenderError, match=r"link 'upstream' \(type demo-provider\) is required"):
        evaluate("1", links={})


def test_a_provider_whose_links_type_differs_is_refused() -> None:
    wrong = Link(addresses=["10.1.0.1"], from_job="demo")
    with pytest.raises(RenderError, match="provides no link of type 'demo-provider'"):
        evaluate("1", links={"upstream": wrong})


def test_a_template_error_names_the_template_and_line() -> None:
    with pytest.raises(RenderError, match=r"Error filling in template 'expression\.erb' \(line 1: .*boom"):
        evaluate("raise ArgumentError, 'boom'")


def test_render_job_renders_every_template_to_its_destination() -> None:
    out = render_job("demo", {"demo": {"port": 4200}}, links={"upstream": UPSTREAM}, jobs_dir=FIXTURE_JOBS)
    assert out == {
        "out/expression.txt": "nothing asked",
        "out/fixed.txt": "port 4200\n",
        "monit": "check process demo-4200\n",
    }


def test_the_monit_file_is_erb_with_properties_and_links_as_the_director_renders_it() -> None:
    sidecar = Link(addresses=["10.1.0.3"])
    alone = render("demo", "monit", links={"upstream": UPSTREAM}, jobs_dir=FIXTURE_JOBS)
    paired = render("demo", "monit", links={"upstream": UPSTREAM, "sidecar": sidecar}, jobs_dir=FIXTURE_JOBS)
    assert alone == "check process demo-4000\n"
    assert paired == "check process demo-4000\ncheck process demo-sidecar\n"


def test_a_template_not_listed_in_the_spec_is_refused() -> None:
    with pytest.raises(RenderError, match="not listed in demo's spec"):
        render("demo", "unlisted.erb", links={"upstream": UPSTREAM}, jobs_dir=FIXTURE_JOBS)
