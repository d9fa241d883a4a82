# session 14 runs (cwd /work/data: the prepared files of session 12's runs.sh; OMP_NUM_THREADS=1 each, two at a time).
G=/work/main/.venv/bin/gan3d
# the hard-sigmoid chair of session 13 continued as the shipped chair was (R1, no instance noise)
OMP_NUM_THREADS=1 $G train --preset cpu32 --init-from runs/chair-hs/snapshot.pt --data chairs32_r1.npz --ema 0.999 --instance-noise 0 --r1 0.1 --steps 4250 --eval-every 1000 --eval-samples 100 --keep-snapshots --snapshot-every 1000 --run-name chair-hs-r1 --quiet
$G eval generation --checkpoint runs/chair-hs-r1 --data chairs32_r1.npz --seeds 0-99 --latent-sets 4 --distances iou --no-context --out ev/chair_hs_r1_gen_sets4.json
# the 3D-VAE-GAN with image augmentation from scratch, on validation (vg-bal8-val's command + the option)
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --image-augment crop color erase --keep-snapshots --run-name vg-aug-val --quiet
for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-aug-val --data $d --out ev/vg_aug_val_$d.json; done
# stopped at ~1,100 steps; its step 1,000 scored
for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-aug-val/snapshot_001000.pt --data $d --out ev/vg_aug_val_s1000_$d.json; done
# the augmentation in session 12's mixed fine-tune, on validation
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val-noD.pt --pairs mn5v_mix8 --steps 750 --noise-decay-steps 750 --balance-classes --image-augment crop color erase --run-name vg-augft-val --quiet
for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-augft-val --data $d --out ev/vg_augft_val_$d.json; done
# the shipped modelnet10 over five seeds on the test split
$G eval classify --checkpoint modelnet10 --data modelnet10_32.npz --shifted reframe erode dilate --also-test chairs32_r1.npz --repeats 5 --out ev/mn10_shipped_test_repeats5.json
# BCE reconstruction error, on validation
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --recon-loss bce --keep-snapshots --run-name vg-bce-val --quiet
for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-bce-val --data $d --out ev/vg_bce_val_$d.json; done
# chair-hs-r1 resumed to 7,250 steps
OMP_NUM_THREADS=1 $G train --resume runs/chair-hs-r1 --steps 7250 --quiet
$G eval generation --checkpoint runs/chair-hs-r1 --data chairs32_r1.npz --seeds 0-99 --latent-sets 4 --distances iou --no-context --out ev/chair_hs_r1_s7250_gen_sets4.json
# the BCE recipe at full length on the whole training split, a record (not to ship)
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5_pairs8 --steps 3000 --balance-classes --recon-loss bce --keep-snapshots --run-name vaegan-bce --quiet
for d in mn5_pairs4 mn5_photo_test4; do $G eval reconstruction --checkpoint runs/vaegan-bce --data $d --out ev/vaegan_bce_$d.json; done
