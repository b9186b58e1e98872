#!/bin/sh
# md2man.sh IN.md OUT PAGE SECTION VERSION: a man page from our Markdown.
# The Markdown's first line ("# page(5) — title") becomes the man title line.
set -eu
in=$1 out=$2 page=$3 section=$4 version=$5
tmp="$out.md"
{
  printf '%% %s %s "" "vmfed %s" "vmfed manual"\n' "$page" "$section" "$version"
  tail -n +2 "$in"
} > "$tmp"
go-md2man -in "$tmp" -out "$out"
# whatis/apropos (and lintian) read "name \- summary" in the NAME section.
sed -i '/^\.SH NAME/,/^\.SH [^N]/s/ — / \\- /' "$out"
rm -f "$tmp"
