# session 15 runs (cwd /work/data: the prepared files of session 12's runs.sh; OMP_NUM_THREADS=1 each, two at a time).
G=/work/main/.venv/bin/gan3d
# the mixed fine-tune with BCE, on validation: vg-bce-val (session 14) without its D, then vg-mix-val's command + --recon-loss bce
python -c "import torch; d=torch.load('runs/vg-bce-val/snapshot.pt', weights_only=True); d.pop('D'); d.pop('D_opt', None); torch.save(d, 'runs/vg-bce-val-noD.pt')"
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/vg-bce-val-noD.pt --pairs mn5v_mix8 --steps 750 --noise-decay-steps 750 --balance-classes --recon-loss bce --run-name vg-bcemix-val --quiet
for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-bcemix-val --data $d --out ev/vg_bcemix_val_$d.json; done
# second seeds of BCE and L2 on validation
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --recon-loss bce --seed 1 --run-name vg-bce-val-s1 --quiet
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --seed 1 --run-name vg-bal8-val-s1 --quiet
for r in vg-bce-val-s1 vg-bal8-val-s1; do for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/$r --data $d --out ev/${r//-/_}_$d.json; done; done
# separately trained (fine-tuned) models on validation, one class each, and the joint control
for c in chair table desk; do
  OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val-noD.pt --pairs mn5v_pairs8 --classes $c --steps 750 --noise-decay-steps 750 --run-name vg-sep-$c-val --quiet
  for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-sep-$c-val --data $d --classes $c --out ev/vg_sep_${c}_val_$d.json; done
done
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val-noD.pt --pairs mn5v_pairs8 --balance-classes --steps 750 --noise-decay-steps 750 --run-name vg-joint750-val --quiet
for d in mn5v_pairs4 mn5v_photo_val4; do $G eval reconstruction --checkpoint runs/vg-joint750-val --data $d --out ev/vg_joint750_val_$d.json; done
# separately trained models at full length, one per class, from the shipped joint model (scored together on test)
for c in bed chair desk sofa table; do
  OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders --pairs mn5_pairs8 --classes $c --steps 750 --noise-decay-steps 750 --run-name sep-$c --quiet
done
PC="bed=runs/sep-bed chair=runs/sep-chair desk=runs/sep-desk sofa=runs/sep-sofa table=runs/sep-table"
$G eval reconstruction --data mn5_pairs4 --per-class $PC --out ev/sep_mn5_pairs4.json
$G eval reconstruction --data mn5_photo_test4 --per-class $PC --out ev/sep_mn5_photo_test4.json
# packaged (the rule passed), each with its own class's test score on its card, then the packaged set scored again by name
for c in bed chair desk sofa table; do
  $G eval reconstruction --checkpoint runs/sep-$c --data mn5_pairs4 --classes $c --out ev/sep_${c}_pairs4.json
  $G models package runs/sep-$c --name vaegan-mn5-renders-$c --command "gan3d train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders --pairs mn5_pairs8 --classes $c --steps 750 --noise-decay-steps 750 --run-name sep-$c" --eval ev/sep_${c}_pairs4.json --int8 G E --without D
done
PC="bed=vaegan-mn5-renders-bed chair=vaegan-mn5-renders-chair desk=vaegan-mn5-renders-desk sofa=vaegan-mn5-renders-sofa table=vaegan-mn5-renders-table"
$G eval reconstruction --data mn5_pairs4 --per-class $PC --out ev/sep_packaged_mn5_pairs4.json
$G eval reconstruction --data mn5_photo_test4 --per-class $PC --out ev/sep_packaged_mn5_photo_test4.json
# the shipped chair: where the voxels outside the largest component lie (no training)
python docs/recipe/session15/speck_probe.py
