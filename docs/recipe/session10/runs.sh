# session 10 runs (cwd: a folder with the prepared data of session8/runs.sh and session9/runs.sh;
# OMP_NUM_THREADS=1 each, two at a time)
G=gan3d
# finish session 9's focal run on validation, and score it
OMP_NUM_THREADS=1 $G train --model vaegan --resume runs/vg-bal8-focal-val --quiet
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vg-bal8-focal-val --data mn5v_pairs4 --out ev/vg_bal8_focal_val.json
# score session 9's wider-D chair run at its last snapshot (step 2,500)
OMP_NUM_THREADS=1 $G eval generation --checkpoint runs/chair-dw2 --data chairs32_r1.npz --n-samples 100 --distances iou --out ev/chair_dw2_gen.json
# 16 views per shape
$G data render mn5_32_val.npz --out mn5v_pairs16 --views 16 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_pairs16 --views 16 --size 128 --random-background --random-color
# slot A: validation
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_pairs16 --steps 1500 --noise-decay-steps 1500 --balance-classes --keep-snapshots --run-name vg-bal16-val --quiet
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vg-bal16-val --data mn5v_pairs4 --out ev/vg_bal16_val.json
# slot B: full length
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5_pairs16 --steps 3000 --balance-classes --keep-snapshots --run-name vaegan-bal16 --quiet
# slot A after vg-bal16-val: photo-like training renders, one lever against vg-bal8-val, on validation
$G data render mn5_32_val.npz --out mn5v_photo8 --photo --views 8 --size 128
$G data render mn5_32_val.npz --out mn5v_photo_val4 --split test --photo --views 4 --size 128
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_photo8 --steps 1500 --noise-decay-steps 1500 --balance-classes --run-name vg-photo8-val --quiet
for r in vg-bal8-val vg-photo8-val; do
  for d in mn5v_pairs4 mn5v_photo_val4; do OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/$r --data $d --out ev/${r}_$d.json; done
done
# vaegan-bal16 scored once on test, as a record (it failed the validation half of the rule)
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vaegan-bal16 --data mn5_pairs4 --out ev/vaegan_bal16_mn5_pairs4.json
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vaegan-bal16 --data mn5_photo_test4 --out ev/vaegan_bal16_mn5_photo_test4.json
# fine-tuning the plain-render model on photo-like renders (needs this session's --init-from of a 3D-VAE-GAN), on validation
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val/snapshot.pt --pairs mn5v_photo8 --steps 750 --noise-decay-steps 750 --balance-classes --run-name vg-bal8-photoft-val --quiet
for d in mn5v_pairs4 mn5v_photo_val4; do OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vg-bal8-photoft-val --data $d --out ev/vg-bal8-photoft-val_$d.json; done
# the photo model: the shipped vaegan-mn5-renders (vaegan-bal8) fine-tuned on photo-like renders of the training shapes
$G data render mn5_32.npz --out mn5_photo8 --photo --views 8 --size 128
$G train --model vaegan --preset cpu32 --init-from runs/vaegan-bal8/snapshot.pt --pairs mn5_photo8 --steps 750 --noise-decay-steps 750 --balance-classes --run-name vaegan-photoft --quiet
for d in mn5_photo_test4 mn5_pairs4; do $G eval reconstruction --checkpoint runs/vaegan-photoft --data $d --out ev/vaegan_photoft_$d.json; done
