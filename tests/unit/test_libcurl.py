"""Finding and loading libcurl (replayer.transports.libcurl, replayer._curl): the library
pycurl uses, with the numbers of the curl.h pycurl was built with."""
from __future__ import annotations

import pycurl

from replayer import _curl
from replayer.transports.libcurl import HTTP_VERSIONS, libcurl_path


def test_abi_numbers_match_pycurl():
    """The libcurl numbers replayer hard-codes (it builds without curl headers) are those of
    the curl.h pycurl was built with."""
    for name, value in _curl.ABI.items():
        assert getattr(pycurl, name) == value, name
    assert HTTP_VERSIONS == {"1.1": pycurl.CURL_HTTP_VERSION_1_1, "2": pycurl.CURL_HTTP_VERSION_2_0,
                             "h2c": pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE}


def test_loads_the_libcurl_pycurl_uses():
    """replayer loads the libcurl that pycurl's wheel bundles, whatever the system has."""
    version = _curl.load_libcurl(libcurl_path())
    assert version.split()[0] == pycurl.version.split()[1]    # "libcurl/X.Y.Z"
