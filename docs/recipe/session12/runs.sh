# session 12 runs (cwd: an empty folder beside ../shared; the machine was new). One thread per command
# (OMP_NUM_THREADS=1), two or three at a time. Logs, configs and JSONs are beside this file.
G=gan3d
$G data prepare ../shared/data/modelnet10-32/modelnet10.npz --out modelnet10_32.npz --resolution 32
$G data prepare modelnet10_32.npz --out mn5_32_val.npz --resolution 32 --classes bed chair desk sofa table --validation 0.15
$G data prepare modelnet10_32.npz --out mn5_32.npz --resolution 32 --classes bed chair desk sofa table
# validation renders (the 401 held-out training shapes are the "test" split of mn5_32_val.npz)
$G data render mn5_32_val.npz --out mn5v_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn5_32_val.npz --out mn5v_pairs4 --views 4 --size 128 --random-background --random-color
$G data render mn5_32_val.npz --out mn5v_photo_val4 --split test --photo --views 4 --size 128
$G data render mn5_32_val.npz --out mn5v_photo8 --photo --views 8 --size 128
$G data merge-pairs mn5v_pairs8 mn5v_photo8 --out mn5v_mix8
# test-side renders
$G data render mn5_32.npz --out mn5_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_photo8 --photo --views 8 --size 128
$G data render mn5_32.npz --out mn5_pairs4 --views 4 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_photo_test4 --split test --views 4 --size 128 --photo
$G data merge-pairs mn5_pairs8 mn5_photo8 --out mn5_mix8

# the validation base model (session 8's vg-bal8-val), then D taken out so that its fine-tunes start as
# the shipped model's must (shipped 3D-VAE-GANs carry no D)
$G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --run-name vg-bal8-val --quiet
python -c "import torch; d=torch.load('runs/vg-bal8-val/snapshot.pt', weights_only=True); d.pop('D'); d.pop('D_opt', None); torch.save(d, 'runs/vg-bal8-val-noD.pt')"
# mixed against photo-only fine-tunes, on validation
$G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val-noD.pt --pairs mn5v_mix8 --steps 750 --noise-decay-steps 750 --balance-classes --run-name vg-mix-val --quiet
$G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val-noD.pt --pairs mn5v_photo8 --steps 750 --noise-decay-steps 750 --balance-classes --run-name vg-photoft-val --quiet
for r in vg-bal8-val vg-mix-val vg-photoft-val; do for d in mn5v_pairs4 mn5v_photo_val4; do
  $G eval reconstruction --checkpoint runs/$r --data $d --out ev/${r//-/_}_$d.json; done; done
# twice as long, every 500 steps kept
$G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val-noD.pt --pairs mn5v_mix8 --steps 1500 --noise-decay-steps 1500 --balance-classes --keep-snapshots --run-name vg-mix1500-val --quiet
for s in 1000 1500; do for d in mn5v_pairs4 mn5v_photo_val4; do
  $G eval reconstruction --checkpoint runs/vg-mix1500-val/snapshot_00$s.pt --data $d --out ev/vg_mix1500_val_s00${s}_$d.json; done; done

# the shipped renders model fine-tuned on plain + photo-like renders, scored once on test (rules.md)
$G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders --pairs mn5_mix8 --steps 750 --noise-decay-steps 750 --balance-classes --run-name vaegan-mix --quiet
for d in mn5_photo_test4 mn5_pairs4; do $G eval reconstruction --checkpoint runs/vaegan-mix --data $d --out ev/vaegan_mix_$d.json; done

# ModelNet10 features with D's widths doubled (G unchanged), from scratch, snapshots kept for validation
$G train --preset cpu32 --data modelnet10_32.npz --diffaugment translation cutout flip --ema 0.999 --d-width 2 --steps 4000 --keep-snapshots --run-name mn10-dw2 --quiet
$G data prepare ../shared/data/3dshapenets-chair-30/volumetric_data --out chairs32_r1.npz --resolution 32 --rotations 1
$G models package runs/vaegan-mix/snapshot.pt --name vaegan-mn5 --int8 G E --without D --eval ev/vaegan_mix_mn5_photo_test4.json
for d in mn5_photo_test4 mn5_pairs4; do $G eval reconstruction --checkpoint vaegan-mn5 --data $d --out ev/vaegan_mix_packaged_$d.json; done
# mn10-dw2 was stopped at step ~1,800 (the session's end); its step 1,500 on validation:
$G eval classify --checkpoint runs/mn10-dw2/snapshot_001500.pt --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --out ev/mn10_dw2_s1500_val.json
# mixed renders from the start (validation), the same 1,500 steps as vg-bal8-val
$G train --model vaegan --preset cpu32 --pairs mn5v_mix8 --steps 1500 --noise-decay-steps 1500 --balance-classes --run-name vg-mixscratch-val --quiet
for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-mixscratch-val --data $d --out ev/vg_mixscratch_val_$d.json; done
