# session 14 runs (cwd /work/data: the prepared files of session 12's runs.sh; OMP_NUM_THREADS=1 each, two at a time).
G=/work/main/.venv/bin/gan3d
# the hard-sigmoid chair of session 13 continued as the shipped chair was (R1, no instance noise)
OMP_NUM_THREADS=1 $G train --preset cpu32 --init-from runs/chair-hs/snapshot.pt --data chairs32_r1.npz --ema 0.999 --instance-noise 0 --r1 0.1 --steps 4250 --eval-every 1000 --eval-samples 100 --keep-snapshots --snapshot-every 1000 --run-name chair-hs-r1 --quiet
$G eval generation --checkpoint runs/chair-hs-r1 --data chairs32_r1.npz --seeds 0-99 --latent-sets 4 --distances iou --no-context --out ev/chair_hs_r1_gen_sets4.json
# the 3D-VAE-GAN with image augmentation from scratch, on validation (vg-bal8-val's command + the option)
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --image-augment crop color erase --keep-snapshots --run-name vg-aug-val --quiet
for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-aug-val --data $d --out ev/vg_aug_val_$d.json; done
