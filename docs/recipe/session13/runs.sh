# session 13 runs (cwd /work/data: the prepared files of session 12's runs.sh; OMP_NUM_THREADS=1 each,
# two at a time). Logs, configs, stats and JSONs are beside this file.
G=/work/main/.venv/bin/gan3d
# the mirrored-image probe (no training), on session 12's vg-mix-val
python docs/recipe/session13/tta_probe.py runs/vg-mix-val mn5v_pairs4 tta_vgmix_pairs4.json
# chairs from scratch, one lever each against session 4's chair-ema
OMP_NUM_THREADS=1 $G train --preset cpu32 --data chairs32_r1.npz --ema 0.999 --g-output hardsigmoid --eval-every 500 --eval-samples 100 --steps 4000 --keep-snapshots --run-name chair-hs --quiet
OMP_NUM_THREADS=1 $G train --preset cpu32 --data chairs32_r1.npz --ema 0.999 --g-upsample resize --eval-every 500 --eval-samples 100 --steps 4000 --keep-snapshots --run-name chair-rc --quiet
for r in chair-hs chair-rc; do $G eval generation --checkpoint runs/$r --data chairs32_r1.npz --n-samples 100 --distances iou --out ev/${r}_gen.json; done
