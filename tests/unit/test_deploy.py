"""Deployment commands of `gen azure --deploy` (replayer.generate.deploy): the files each
command reads, and service names and YAMLs per endpoint."""
from __future__ import annotations

from replayer.generate.deploy import file_arguments, service_name


def test_files_a_deployment_command_reads():
    """The files a kubectl/kn/oc command reads are its -f/--filename/-k/--kustomize values
    (every spelling), not stdin or URLs, and nothing of other commands or `kubectl logs -f`."""
    assert file_arguments(["kubectl", "apply", "-f", "a.yaml", "--filename=b.yaml", "-fc.yaml",
                           "-k", "kdir", "-f", "-", "-f", "https://h/x.yaml"]) == \
        ["a.yaml", "b.yaml", "c.yaml", "kdir"]
    assert file_arguments(["/usr/bin/kn", "service", "create", "s", "--filename", "s.yaml"]) == ["s.yaml"]
    assert file_arguments(["kubectl", "logs", "-f", "pod"]) == []
    assert file_arguments(["rm", "-f", "x"]) == []


def test_service_name_is_the_endpoints_first_label():
    """The Knative service an endpoint reaches is its host name's first label."""
    assert service_name("aes-go-10-10.default.127.0.0.1.sslip.io") == "aes-go-10-10"
    assert service_name("svc") == "svc"
