#!/bin/sh
# The first process of a User-Mode Linux guest (tests/uml/uml.py boots it as
# `init=/bin/sh -- THIS`): kernel SCTP, loopback up, then the test's run.sh in EIR_UML_DIR
# (given on the kernel command line), its exit status in EIR_UML_DIR/status, and halt.
# The guest's root is the host's file system (hostfs), read-write: write only in EIR_UML_DIR.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sys /sys
modules="$EIR_UML_DIR/modules"  # holds lib/modules/VERSION -> /usr/lib/uml/modules/VERSION
for module in sctp md5 hmac; do
  modprobe -d "$modules" "$module" || echo "modprobe $module failed" >&2
done
ip link set lo up
cd "$EIR_UML_DIR" && sh ./run.sh >run.log 2>&1
echo $? >status
sync
halt -f
