"""package/Makefile: an OpenWrt feed package.  There is no SDK here, so its recipes run under a
minimal stand-in for rules.mk, package.mk and python3-package.mk (the few macros it uses), and
what they install must be what the .ipk of toolchain/mkipk holds, but for the place of the
Python package (site-packages in a feed build, /usr/lib/serlite in mkipk's)."""

import re
import shutil
import subprocess

import pytest

from .pkgtools import REPO, SITE

MAKEFILE = REPO / "package" / "Makefile"
PY_VERSION = "3.13"

RULES_MK = """\
INCLUDE_DIR:=$(TOPDIR)/include
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
"""

PACKAGE_MK = """\
PKG_BUILD_DIR:=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR:=$(PKG_BUILD_DIR)/ipkg-install
define BuildPackage
.PHONY: install-$(1)
install-$(1):
	rm -rf $(PKG_BUILD_DIR) $(DESTDIR)/$(1)
	$$(Build/Prepare)
	$$(Build/Compile)
	mkdir -p $(DESTDIR)/$(1)
	$$(call Package/$(1)/install,$(DESTDIR)/$(1))
endef
"""

# Py3Package as python3-package.mk has it, less the byte-compiling (no host python3 here)
PYTHON3_PACKAGE_MK = f"""\
PYTHON3_VERSION:={PY_VERSION}
PYTHON3_PKG_DIR:=/usr/lib/python$(PYTHON3_VERSION)/site-packages
define Py3Package
  define Package/$(1)/install
	$$(call Py3Package/$(1)/install,$$(1))
	$(CP) $(PKG_INSTALL_DIR)/. $$(1)/
  endef
endef
"""


def test_what_openwrt_requires():
    text = MAKEFILE.read_text()
    lines = text.splitlines()
    assert lines.index("include $(TOPDIR)/rules.mk") < lines.index(
        "include $(INCLUDE_DIR)/package.mk")
    assert "include $(TOPDIR)/feeds/packages/lang/python/python3-package.mk" in lines
    package = re.search(r"^define Package/serlite\n(.*?)^endef", text, re.M | re.S).group(1)
    assert "  PKGARCH:=all" in package.splitlines()
    assert "  DEPENDS:=+python3-light" in package.splitlines()
    for line in ("PKG_NAME:=serlite", "PKG_RELEASE:=1", "$(eval $(call BuildPackage,serlite))",
                 "$(eval $(call Py3Package,serlite))"):
        assert line in lines, line
    conffiles = re.search(r"^define Package/serlite/conffiles\n(.*?)^endef", text,
                          re.M | re.S).group(1).split()
    assert conffiles == ["/etc/config/ser", "/etc/ser/ser.cfg", "/etc/ser/webui.conf"]


@pytest.fixture(scope="module")
def feed_install(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.fail("make is not installed (tests/run installs the Debian package make)")
    top = tmp_path_factory.mktemp("sdk")
    (top / "rules.mk").write_text(RULES_MK)
    (top / "include").mkdir()
    (top / "include" / "package.mk").write_text(PACKAGE_MK)
    py = top / "feeds" / "packages" / "lang" / "python"
    py.mkdir(parents=True)
    (py / "python3-package.mk").write_text(PYTHON3_PACKAGE_MK)
    dest = top / "dest"
    run = subprocess.run(["make", "--no-print-directory", "-C", str(REPO / "package"),
                          f"TOPDIR={top}", f"BUILD_DIR={top / 'build'}", f"DESTDIR={dest}",
                          "install-serlite"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return dest / "serlite"


def tree(root):
    return {p.relative_to(root).as_posix(): p.stat().st_mode & 0o777
            for p in root.rglob("*") if p.is_file()}


def test_the_feed_package_installs_what_the_ipk_holds(feed_install, ipk):
    site = f"usr/lib/python{PY_VERSION}/site-packages/"
    installed = {path.replace(site, SITE + "/", 1): mode
                 for path, mode in tree(feed_install).items()}
    shipped = {m.name[2:]: m.mode for m in ipk.data.getmembers() if m.isfile()}
    assert installed == shipped


def test_the_feed_package_leaves_no_caches(feed_install):
    assert not [p for p in feed_install.rglob("__pycache__")]
