"""Platform files: the shipped simulated platform, the template, and platform errors."""

from __future__ import annotations

import yaml
from protocol_helpers import SIMULATED, TEMPLATE

from robochem.protocols.errors import ProtocolError
from robochem.protocols.load import load_platform, parse_platform
from robochem.protocols.platform import Platform
from robochem.simulator.runner import SimulatedPlatform


def _errors(text: str) -> list[str]:
    try:
        parse_platform(text, "lab.yaml")
    except ProtocolError as exc:
        return [str(i) for i in exc.issues]
    return []


def test_shipped_simulated_platform_is_what_the_runner_writes(tmp_path) -> None:
    runner = SimulatedPlatform(data_root=tmp_path).platform()  # not started: url "sim"
    shipped = load_platform(SIMULATED)
    written = Platform.model_validate(runner)
    assert shipped.model_dump(exclude={"clock", "reaction"}) == written.model_dump(
        exclude={"clock", "reaction"}
    ), (
        "protocols/platforms/simulated.yaml no longer matches SimulatedPlatform.platform(): "
        "update its body from yaml.safe_dump(SimulatedPlatform().platform(), sort_keys=False)"
    )


def test_runner_platform_file_loads(tmp_path) -> None:
    sim = SimulatedPlatform(data_root=tmp_path)
    sim.servers = {spec.name: _FakeServer(i) for i, spec in enumerate(sim.specs)}
    out = tmp_path / "platform.yaml"
    sim.write_platform(out)
    platform = load_platform(out)
    assert platform.devices["pump-substrate"].url == "tcp://127.0.0.1:9000"
    assert platform.fluidics.reactor.volume.value == 3.9
    assert platform.clock is not None


class _FakeServer:
    def __init__(self, i: int) -> None:
        self.port = 9000 + i

    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


def test_template_loads() -> None:
    platform = load_platform(TEMPLATE)
    assert not platform.simulated
    assert platform.devices["reactor"].limits.temperature[1].value == 80.0


def test_platform_errors() -> None:
    text = TEMPLATE.read_text()
    bad = (
        text.replace("driver: chemyx-fusion", "driver: chemyx-fushion")
        .replace("url: tcp://192.168.1.30:13000", "url: sim")
        .replace('collect: "2"', 'collect: "7"')
        .replace("reactor: {device: reactor,", "reactor: {device: reactr,")
    )
    lines = text.splitlines()

    def at(fragment: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if fragment in line)

    assert _errors(bad) == [
        f"lab.yaml:{at('driver: chemyx-fusion')}:13: devices.pump-catalyst.driver: unknown "
        "driver 'chemyx-fushion'; did you mean 'chemyx-fusion'?",
        f"lab.yaml:{at('192.168.1.30')}:10: devices.nmr.url: 'sim' is only allowed in a "
        "simulated platform (simulated: true); give the device URL",
        f"lab.yaml:{at('reactor: {device: reactor,')}:21: fluidics.reactor.device: unknown "
        "reactor device 'reactr'; did you mean 'reactor'?",
        f"lab.yaml:{at('collection: {valve')}:59: fluidics.collection.collect: '7' is not a "
        "position of valve-collect; positions are '1', '2', '3', '4', '5', '6'",
    ]


def test_platform_unknown_limit_and_version() -> None:
    text = SIMULATED.read_text()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "max_pressure: 400 bar" in t)
    assert _errors(text.replace("max_pressure: 400 bar", "max_presure: 400 bar", 1)) == [
        f"lab.yaml:{line}:7: devices.pump-substrate.limits.max_presure: unknown key "
        "'max_presure'; did you mean 'max_pressure'?"
    ]
    assert _errors(text.replace("robochem: 1", "robochem: 3")) == [
        "lab.yaml:13:11: robochem: 3 is not a known platform file version; this robochem "
        "reads version 1"
    ]


def test_written_platform_is_plain_yaml(tmp_path) -> None:
    data = yaml.safe_load(SIMULATED.read_text())
    assert data["fluidics"]["pumps"]["pump-catalyst"]["selector"] == "valve-catalyst"


def test_platform_urls_are_checked_with_the_transport_rules() -> None:
    text = TEMPLATE.read_text().replace("tcp://192.168.1.22:10001", "tcp://192.168.1.22")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "tcp://192.168.1.22" in s)
    assert _errors(text) == [
        f"lab.yaml:{line}:10: devices.valve-collect.url: tcp://192.168.1.22: expected host:port"
    ]


def test_selector_valve_must_exist() -> None:
    text = SIMULATED.read_text().replace("selector: valve-catalyst", "selector: valve-catalist")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "valve-catalist" in s)
    assert _errors(text) == [
        f"lab.yaml:{line}:17: fluidics.pumps.pump-catalyst.selector: unknown selector valve "
        "device 'valve-catalist'; did you mean 'valve-catalyst'?"
    ]


def test_shim_settings_are_checked() -> None:
    text = SIMULATED.read_text()
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "max_line_width" in s)
    errors = _errors(text.replace("method: QuickShim", "method: CheckShim").replace("2 Hz", "2 mL"))
    assert errors[0].startswith(f"lab.yaml:{line - 1}:15: fluidics.nmr.shim.method: ")
    assert "'QuickShim' or 'PowerShim'" in errors[0]
    assert errors[1].startswith(f"lab.yaml:{line}:23: fluidics.nmr.shim.max_line_width: ")
    assert "'2 mL' is a volume, expected a frequency" in errors[1]
    assert len(errors) == 2
    template = load_platform(TEMPLATE).fluidics.nmr.shim
    assert template is not None and template.sample_reference == 1.94
    assert template.every is not None and template.every.value == 12 * 3600


def test_safe_state_temperature_is_off_or_a_temperature_within_the_reactor_limits() -> None:
    text = TEMPLATE.read_text()
    assert load_platform(TEMPLATE).safe_state.temperature is None  # the template: off
    body = text.replace("safe_state: {temperature: off}", "safe_state: {temperature: 25 degC}")
    assert body != text
    safe = parse_platform(body, "lab.yaml").safe_state.temperature
    assert safe is not None and safe.value == 25.0 and safe.text == "25 degC"
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "safe_state:" in t)
    column = text.splitlines()[line - 1].index("off") + 1

    def error(value: str) -> list[str]:
        return _errors(
            text.replace("safe_state: {temperature: off}", f"safe_state: {{temperature: {value}}}")
        )

    assert error("5 bar") == [
        f"lab.yaml:{line}:{column}: safe_state.temperature: '5 bar' is a pressure, expected "
        "a temperature such as '25 degC'"
    ]
    assert error("true") == [
        f"lab.yaml:{line}:{column}: safe_state.temperature: expected off or a temperature "
        "such as '25 degC', got true"
    ]
    # the template's reactor allows [0 degC, 80 degC]: rejected, not clamped
    assert error("90 degC") == [
        f"lab.yaml:{line}:{column}: safe_state.temperature: 90 degC is outside reactor's "
        "temperature limits [0 degC, 80 degC]"
    ]
    unknown = _errors(text.replace("safe_state: {temperature: off}", "safe_state: {heat: off}"))
    assert len(unknown) == 1 and "safe_state.heat: unknown key 'heat'" in unknown[0]
