# session 13 runs (cwd /work/data: the prepared files of session 12's runs.sh; OMP_NUM_THREADS=1 each,
# two at a time). Logs, configs, stats and JSONs are beside this file.
G=/work/main/.venv/bin/gan3d
# the mirrored-image probe (no training), on session 12's vg-mix-val
python docs/recipe/session13/tta_probe.py runs/vg-mix-val mn5v_pairs4 tta_vgmix_pairs4.json
# chairs from scratch, one lever each against session 4's chair-ema
OMP_NUM_THREADS=1 $G train --preset cpu32 --data chairs32_r1.npz --ema 0.999 --g-output hardsigmoid --eval-every 500 --eval-samples 100 --steps 4000 --keep-snapshots --run-name chair-hs --quiet
OMP_NUM_THREADS=1 $G train --preset cpu32 --data chairs32_r1.npz --ema 0.999 --g-upsample resize --eval-every 500 --eval-samples 100 --steps 4000 --keep-snapshots --run-name chair-rc --quiet
for r in chair-hs chair-rc; do $G eval generation --checkpoint runs/$r --data chairs32_r1.npz --n-samples 100 --distances iou --out ev/${r}_gen.json; done
# the shipped chair over four latent sets (the other models likewise, one set at a time, before --latent-sets existed)
$G eval generation --checkpoint chair --data chairs32_r1.npz --seeds 0-99 --latent-sets 4 --distances iou --no-context --out ev/chair_gen_sets4.json
for s in 100 200 300; do for r in runs/chair-hs runs/chair-rc; do
  $G eval generation --checkpoint $r --data chairs32_r1.npz --seeds $s-$((s+99)) --distances iou --no-context --out ev/$(basename $r)_gen_s$s.json; done; done
# ModelNet10 features with a resize-convolution G (rule in rules.md)
OMP_NUM_THREADS=1 $G train --preset cpu32 --data modelnet10_32.npz --diffaugment translation cutout flip --ema 0.999 --g-upsample resize --steps 2000 --keep-snapshots --run-name mn10-rc --quiet
$G eval classify --checkpoint runs/mn10-rc/snapshot_002000.pt --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --out ev/mn10_rc_s2000_val.json
# the 3D-VAE-GAN's G and D from a 3D-GAN trained on the validation dataset's training split (stopped at ~1,150)
OMP_NUM_THREADS=1 $G train --preset cpu32 --data mn5_32_val.npz --ema 0.999 --steps 1000 --run-name gan-mn5v --quiet
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/gan-mn5v/snapshot.pt --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --keep-snapshots --run-name vg-gan-val --quiet
# the shipped modelnet10 on validation, five seeds
for s in 0 1 2 3 4; do $G eval classify --checkpoint modelnet10 --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --seed $s --out ev/mn10_shipped_val_seed$s.json; done
# ModelNet10 features with a hard-sigmoid G output
OMP_NUM_THREADS=1 $G train --preset cpu32 --data modelnet10_32.npz --diffaugment translation cutout flip --ema 0.999 --g-output hardsigmoid --steps 2000 --keep-snapshots --run-name mn10-hs --quiet
$G eval classify --checkpoint runs/mn10-hs/snapshot_002000.pt --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --out ev/mn10_hs_s2000_val.json
