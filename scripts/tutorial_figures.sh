#!/usr/bin/env bash
# Regenerate the figures and numbers in docs/tutorials/ with the shipped default model
# (or MODEL.pt given as the first argument). About 10 minutes on 2 cores with nothing else
# running, about an hour beside a 2-rank DFT job.
# Usage: bash scripts/tutorial_figures.sh [MODEL.pt]
set -euo pipefail
cd "$(dirname "$0")/.."
model=()
[ -n "${1:-}" ] && model=(--model "$1")
out=docs/tutorials/figures
work=$(mktemp -d)
mkdir -p "$out"
# keep each command's report, without the line naming the temporary output folder
report() { grep -v "$work" | tee "$1"; }
for material in NiO MnO; do
    spinmultinet scan "$material" "${model[@]}" --output-dir "$work/scan_$material" --quiet \
        | report "$out/scan_$material.txt"
    cp "$work/scan_$material/scan.png" "$out/scan_$material.png"
    cp "$work/scan_$material/scan.json" "$out/scan_$material.json"
    spinmultinet phonons "$material" "${model[@]}" --output-dir "$work/phonons_$material" --quiet \
        | report "$out/phonons_$material.txt"
    cp "$work/phonons_$material/phonons.png" "$out/phonons_$material.png"
done
# any crystal: Mn2O3 in the corundum structure (Cr2O3's coordinates, Mn3+ guesses), 3 shells
python - "$work/Mn2O3_corundum.cif" <<'PY'
import sys
from ase.io import write
from ase.spacegroup import crystal
write(sys.argv[1], crystal(["Mn", "O"], basis=[(0, 0, 0.3475), (0.3058, 0, 0.25)],
      spacegroup=167, cellpar=[4.96, 4.96, 13.59, 90, 90, 120], primitive_cell=True))
PY
spinmultinet scan "$work/Mn2O3_corundum.cif" --magnitudes Mn=4 --shells 3 --monte-carlo \
    "${model[@]}" --output-dir "$work/scan_corundum" --quiet | report "$out/scan_Mn2O3_corundum.txt"
for pressure in 0 10; do
    spinmultinet relax MnO --ordering AFM-II --pressure "$pressure" "${model[@]}" \
        --output "$work/relax_$pressure.extxyz" --quiet | report "$out/relax_MnO_${pressure}GPa.txt"
done
spinmultinet md NiO --supercell 6 0 0 3 3 0 3 0 3 --ensemble nve --temperature 300 --steps 2000 \
    "${model[@]}" --output-dir "$work/md_nve" --quiet | report "$out/md_NiO_nve.txt"
cp "$work/md_nve/md.png" "$out/md_NiO_nve.png"
spinmultinet md NiO --supercell 6 0 0 3 3 0 3 0 3 --ensemble npt --temperature 300 --steps 2000 \
    "${model[@]}" --output-dir "$work/md_npt" --quiet | report "$out/md_NiO_npt.txt"
cp "$work/md_npt/md.png" "$out/md_NiO_npt.png"
rm -rf "$work"
echo "figures in $out/ ($(uname -m), $(nproc --all) cores, $(date -u +%F))"
