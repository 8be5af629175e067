#!/bin/sh
# /usr/local/sbin/clconv-firstboot, run by clconv-firstboot.service (images
# made by pi/build-os-image.sh) before ssh.service, as Raspberry Pi OS does
# on first boot:
#   /boot/firmware/ssh or ssh.txt  -> host keys made (when missing), SSH
#                                     enabled and started, the file removed
#   /boot/firmware/userconf.txt    -> "NAME:HASH" (crypt(3) hash, e.g.
#                                     `openssl passwd -6`): user NAME created
#                                     (or its password set), groups sudo,
#                                     video, ..., passwordless sudo; removed
set -eu
B=/boot/firmware
log() { echo "clconv-firstboot: $*"; }

if [ -f "$B/userconf.txt" ]; then
    IFS=: read -r name hash < "$B/userconf.txt" || true
    case $name in
        ""|*[!a-z0-9_-]*|[!a-z_]*) log "userconf.txt: bad user name '$name'; ignored" ;;
        *)
            if [ -z "$hash" ]; then
                log "userconf.txt: no password hash for $name; ignored"
            else
                groups=""
                for g in sudo video render adm dialout plugdev users input netdev; do
                    getent group "$g" >/dev/null && groups=${groups:+$groups,}$g
                done
                id "$name" >/dev/null 2>&1 || useradd -m -s /bin/bash ${groups:+-G "$groups"} "$name"
                usermod -p "$hash" "$name"
                printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$name" > "/etc/sudoers.d/010_$name-nopasswd"
                chmod 0440 "/etc/sudoers.d/010_$name-nopasswd"
                log "user $name created"
            fi ;;
    esac
    rm -f "$B/userconf.txt"
fi
if [ -e "$B/ssh" ] || [ -e "$B/ssh.txt" ]; then
    ssh-keygen -A
    systemctl enable ssh.service
    systemctl start --no-block ssh.service
    rm -f "$B/ssh" "$B/ssh.txt"
    log "SSH enabled"
fi
sync
