# session 22 runs (cwd /work/data; one thread per run, two at a time). Data from session18/runs.sh.
G=/work/main/.venv/bin/gan3d
export OMP_NUM_THREADS=1
# rule R: session 20's mn10-con4 (stopped at step 1,546) resumed to 4,000 steps
$G train --resume runs/mn10-con4 --steps 4000 --quiet
# rule T: the photo models' E fit to 3,000 steps on validation (table, then chair, on the second thread)
for c in table chair; do
  $G train --model vaegan --preset cpu32 --init-from runs/vg-mix-$c-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_mix8 --classes $c --steps 3000 --snapshot-every 750 --keep-snapshots --ema 0.999 --recon-loss wbce --recon-pos-weight 4 --run-name vg-mixwb4L-$c-val --quiet
done
# rule S: scored (no training); C = chair, table
E=/work/main/docs/recipe/session22/ev
$G eval reconstruction --checkpoint runs/vg-mixwb4-$C-val --data mn5v_photo_val4 --classes $C --out $E/S_control_${C}_val.json
$G eval reconstruction --checkpoint runs/vg-mixwb4-$C-val --data mn5v_photo_val4 --classes $C --prior-weight $L --out $E/S_prior${L}_${C}_val.json   # L = 0.25, 0.5
$G eval reconstruction --checkpoint runs/vg-mixwb4-$C-val --data mn5v_photo_val4 --classes $C --samples 8 --out $E/S_samples8_${C}_val.json
# rule U on validation (a third process beside R and T), C = table, then chair
$G train --model vaegan --preset cpu32 --init-from runs/vg-eowb2-$C-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_mix8 --distill 1 --distill-pairs mn5v_pairs8 --classes $C --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 4 --run-name vg-dist-$C-val --quiet
# rule U scored, and the teacher itself on the photo-like renders
$G eval reconstruction --checkpoint runs/vg-dist-$C-val --data mn5v_photo_val4 --classes $C --out $E/U_dist_${C}_val.json
$G eval reconstruction --checkpoint runs/vg-eowb2-$C-val --data mn5v_photo_val4 --classes $C --out $E/U_teacher_${C}_val.json
# rule T scored, S = 001500, 002250, 003000
$G eval reconstruction --checkpoint runs/vg-mixwb4L-$C-val/snapshot_$S.pt --data mn5v_photo_val4 --classes $C --out $E/T_${S}_${C}_val.json
# probe: the photo models on their own training photographs (R = vg-mixwb4-table-val, vg-mixwb4L-table-val)
$G eval reconstruction --checkpoint runs/$R --data mn5v_photo8 --split train --classes table --max-pairs 1000 --out $E/probe_trainfit_${R}_photo8.json
# rule V: 32 new photo-like views per training shape (table, then chair), then T's fit on them alone
$G data render mn5_32_val.npz --out mn5v_photo32_$C --split train --classes $C --views 32 --size 128 --photo --seed 1
$G train --model vaegan --preset cpu32 --init-from runs/vg-mix-$C-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_photo32_$C --classes $C --steps 3000 --snapshot-every 750 --keep-snapshots --eval-pairs 0 --ema 0.999 --recon-loss wbce --recon-pos-weight 4 --run-name vg-p32-$C-val --quiet
# rule R scored: the shipped model again on this machine, then each snapshot S = 002000 ... 004000
$G eval classify --checkpoint modelnet10 --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --out $E/R_shipped_val.json
$G eval classify --checkpoint runs/mn10-con4/snapshot_$S.pt --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --out $E/R_${S}_val.json
# rule V's test-side renders (data only; used only if V passes), C = table, chair
$G data render mn5_32.npz --out mn5_photo32_$C --split train --classes $C --views 32 --size 128 --photo --seed 1
# rule V scored, S = 001500, 002250, 003000
$G eval reconstruction --checkpoint runs/vg-p32-$C-val/snapshot_$S.pt --data mn5v_photo_val4 --classes $C --out $E/V_${S}_${C}_val.json
# for the next session: ModelNet10 with a validation split the GAN never sees (its test split = 20% of the training split)
$G data prepare modelnet10_32.npz --out mn10_32_val.npz --resolution 32 --validation 0.2
# for the next session: the first stage of the shipped modelnet10's lineage, from scratch, without the validation shapes
# (started late in session 22; resume with: gan3d train --resume runs/mn10v-s1)
$G train --preset cpu32 --data mn10_32_val.npz --steps 4528 --diffaugment translation cutout flip --ema 0.999 --snapshot-every 500 --keep-snapshots --run-name mn10v-s1 --quiet
# rule V passed (+3,000 chosen): the test side, from the shipped photo models (C = table, chair, desk; renders above,
# desk's made the same way), then each scored on the held-out photo-like renders and packaged into a copy of the models
$G train --model vaegan --preset cpu32 --init-from vaegan-mn5-$C --encoder-only --encoder-only-z mean --pairs mn5_photo32_$C --classes $C --steps 3000 --snapshot-every 750 --keep-snapshots --eval-pairs 0 --ema 0.999 --recon-loss wbce --recon-pos-weight 4 --run-name p32-$C --quiet
$G eval reconstruction --checkpoint runs/p32-$C/snapshot_003000.pt --data mn5_photo_test4 --classes $C --out $E/p32_${C}_photo4.json
cp -r /work/main/src/gan3d/zoo/models stage22   # once, before the three
$G models package runs/p32-$C/snapshot_003000.pt --name vaegan-mn5-$C --out stage22 --command "..." --eval $E/p32_${C}_photo4.json --int8 G E --without D   # the card holds the full command
PP="bed=vaegan-mn5-bed chair=vaegan-mn5-chair desk=vaegan-mn5-desk sofa=vaegan-mn5-sofa table=vaegan-mn5-table"
for d in mn5_photo_test4 mn5_pairs4; do GAN3D_MODELS_DIR=stage22 $G eval reconstruction --data $d --per-class $PP --out $E/p32_packaged_$d.json; done
# rule R at the end of the session: resumed to +3,500 and that snapshot scored
$G train --resume runs/mn10-con4 --steps 3500 --quiet
$G eval classify --checkpoint runs/mn10-con4/snapshot_003500.pt --data modelnet10_32.npz --validation 0.2 --shifted reframe erode dilate --also-test chairs32_r1.npz --out $E/R_003500_val.json
