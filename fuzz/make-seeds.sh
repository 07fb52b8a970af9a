#!/usr/bin/env bash
# make-seeds.sh: writes the seed corpus of the fuzz targets (fuzz/seeds/TARGET/) from real
# pools and streams, made with the release binaries. The files are committed; rerun this
# after a change of the on-disk or stream format, and commit what it writes.
#
#   stream_reader, receive: a full stream of @a, the incremental @a..@b (WRITE, PATCH,
#       RENAME, UNLINK, PUNCH, symlinks, directories), @a..@c as a run of two parts (-I), and a
#       resumed part. receive/base.stream is the full stream of @a, which the receive
#       target applies first so that the incremental seeds find their base.
#   label_commit: both labels, the commit records, pool roots, space log blocks and a
#       saved receive state.
#   tree_node: every node of every tree of a pool, leaves and internal nodes.
#   cli_numbers: durations, compression levels, a resume token, moments, `set`
#       properties and file-selection rules as an operator types them, at and past their
#       limits; 16 bytes of offset and length (LE) at 2^63, 2^64.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --locked
bin=$PWD/target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seeds=fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{stream_reader,receive,label_commit,tree_node,cli_numbers}

# Deterministic bytes that zstd cannot shrink: `bytes SEED COUNT`.
bytes() { python3 -c "import random,sys; r=random.Random($1); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range($2)))"; }

src=$work/src.img
truncate -s 16M "$src"
"$bin"/snapfmt "$src" > /dev/null
tree=$work/tree
mkdir -p "$tree"/dir
printf 'hello\n' > "$tree"/small
seq 1 3000 > "$tree"/text # compresses: a zstd WRITE
bytes 1 9000 > "$tree"/random # three pieces, stored raw
printf 'nested\n' > "$tree"/dir/nested
ln -s small "$tree"/link
truncate -s 300K "$tree"/sparse # holes, then one record at the end
printf 'end' >> "$tree"/sparse
"$bin"/snapctl sync "$tree" "$src" > /dev/null
"$bin"/snapctl snapshot @a "$src" > /dev/null

# @b: one changed piece (PATCH), an append, a rename, a removal, a new directory, and a
# file cut short (PUNCH).
python3 - "$tree"/random << 'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(4096)
    f.write(b"changed piece" * 10)
EOF
seq 3001 3100 >> "$tree"/text
mv "$tree"/small "$tree"/renamed
rm "$tree"/link
mkdir "$tree"/dir2
printf 'new\n' > "$tree"/dir2/new
truncate -s 10K "$tree"/sparse
"$bin"/snapctl sync "$tree" "$src" > /dev/null
"$bin"/snapctl snapshot @b "$src" > /dev/null
printf 'third\n' > "$tree"/dir2/third
"$bin"/snapctl sync "$tree" "$src" > /dev/null
"$bin"/snapctl snapshot @c "$src" > /dev/null

"$bin"/snapsend @a "$src" > "$work"/full-a.stream
"$bin"/snapsend -i @a @b "$src" > "$work"/incremental-a-b.stream
"$bin"/snapsend -I @a @c "$src" > "$work"/run-a-c.stream # two parts: @b, then @c
"$bin"/snapsend @b "$src" > "$work"/full-b.stream

# A resumed part: a target that saved half of the incremental, and the rest sent by token.
target=$work/target.img
truncate -s 16M "$target"
"$bin"/snapfmt "$target" > /dev/null
"$bin"/snaprecv "$target" < "$work"/full-a.stream > /dev/null
size=$(stat -c %s "$work"/incremental-a-b.stream)
head -c $((size / 2)) "$work"/incremental-a-b.stream | "$bin"/snaprecv -s "$target" > /dev/null 2>&1 || true
token=$("$bin"/snapctl status "$target" | grep -o '1-[0-9a-f]*' | head -1)
"$bin"/snapsend -t "$token" "$src" > "$work"/resumed-a-b.stream

for stream in full-a incremental-a-b run-a-c full-b resumed-a-b; do
    cp "$work/$stream.stream" "$seeds/stream_reader/"
done
for stream in full-a incremental-a-b run-a-c; do
    cp "$work/$stream.stream" "$seeds/receive/"
done
cp "$work"/full-a.stream "$seeds"/receive/base.stream

# `copy IMAGE BLOCK BYTES NAME`: BYTES bytes at block BLOCK of IMAGE into a seed file.
copy() { dd if="$1" of="$2" bs=4096 skip="$3" count=$((($4 + 4095) / 4096)) status=none && truncate -s "$4" "$2"; }

# Many small files make the file tree deep enough for internal nodes.
mkdir "$tree"/many
for i in $(seq 1 250); do : > "$tree/many/file-$i"; done
"$bin"/snapctl sync "$tree" "$src" > /dev/null

for image in "$src" "$target"; do
    name=$(basename "$image" .img)
    blocks=$(($(stat -c %s "$image") / 4096))
    copy "$image" "$seeds/label_commit/$name-label-0" 0 4096
    copy "$image" "$seeds/label_commit/$name-label-1" $((blocks - 64)) 4096
    for slot in $(seq 1 15); do
        if [[ -n $(dd if="$image" bs=4096 skip="$slot" count=1 status=none | tr -d '\0' | head -c 1) ]]; then
            copy "$image" "$seeds/label_commit/$name-commit-$slot" "$slot" 4096
        fi
    done
    # Blocks the dump names: "KIND@ADDR ... stored=BYTES"; each distinct one once.
    "$bin"/snapctl dump --files "$image" |
        grep -o '\(pool-root\|space-log\|blob\|tree-node\)@[0-9]* birth=[0-9]* stored=[0-9]*' |
        sort -u |
        while read -r where _ stored; do
            kind=${where%@*} addr=${where#*@} stored=${stored#stored=}
            case $kind in
                tree-node) dir=tree_node ;;
                *) dir=label_commit ;;
            esac
            copy "$image" "$seeds/$dir/$name-$kind-$addr" "$addr" "$stored"
        done
done

# The saved receive state: the blob that the target's version-2 pool root names (its
# pointer is at byte 442; the dump does not show it).
for root in "$seeds"/label_commit/target-pool-root-*; do
    python3 - "$root" "$target" "$seeds"/label_commit/target-receive-state << 'PYTHON'
import struct, sys
root = open(sys.argv[1], "rb").read()
if struct.unpack_from("<I", root, 4)[0] == 2:
    addr, = struct.unpack_from("<Q", root, 442)
    stored, = struct.unpack_from("<I", root, 442 + 24)
    with open(sys.argv[2], "rb") as image:
        image.seek(addr * 4096)
        open(sys.argv[3], "wb").write(image.read(stored))
PYTHON
done

# Numbers at their edges: 0, 1, the limit, one past it, 2^63 - 1, 2^64 - 1, 2^64.
n=0
for text in 0 1 24h 90m 7d 2w 18446744073s 18446744074s 307445734m 9223372036854775807 \
    18446744073709551615 18446744073709551616 18446744073709551615w -1 +5 " 5 " 5y h "" \
    none zstd zstd:1 zstd:19 zstd:20 zstd:256 zstd:-1 \
    1-"$(printf '07%.0s' {1..16})$(printf '00%.0s' {1..16})2a000000000000000300000000000000ffffffffffffffff" \
    -6h "6h ago" 2026-11-25T02:00:00Z 2026-11-25T03:00:00+01:00 2026-11-25 -99999999d \
    history=24h history-space=10% compression=lz4 'data/**/*.jpg' 'data/[a' \
    'uid=1000,size<1M,mtime<2026-11-01' 'xattr.user.label=cat' 'size>=1.5T,type=l,mode=0644'; do
    printf '%s' "$text" > "$seeds/cli_numbers/text-$n"
    n=$((n + 1))
done
python3 - "$seeds/cli_numbers" << 'PYTHON'
import struct, sys
edges = [0, 1, 3, (1 << 63) - (1 << 17), (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
for i, (offset, length) in enumerate((o, l) for o in edges for l in (0, 3, 1 << 17)):
    open(f"{sys.argv[1]}/offset-{i}", "wb").write(struct.pack("<QQ", offset, length))
PYTHON

du -sh "$seeds"/*
