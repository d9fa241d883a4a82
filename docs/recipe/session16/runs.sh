# session 16 runs (cwd /work/data: the prepared files of session 12's runs.sh; OMP_NUM_THREADS=1 each, two at a time).
G=/work/main/.venv/bin/gan3d
# a lower threshold, asked of session 15's one-class validation models
for c in chair table; do $G eval reconstruction --checkpoint runs/vg-sep-$c-val --data mn5v_pairs4 --classes $c --thresholds 0.2 0.3 0.4 --out s16/thr_sep_${c}_val.json; done
# probe: a one-class model averaged with its joint parent (ens_probe.py; before gan3d had A+B)
python ens_probe.py mn5v_pairs4 s16/ens_probe_val.json chair:runs/vg-sep-chair-val:runs/vg-bal8-val table:runs/vg-sep-table-val:runs/vg-bal8-val desk:runs/vg-sep-desk-val:runs/vg-bal8-val
# A: BCE inside one-class models, validation (runs/vg-bce-val without D: session 15's runs.sh)
for c in chair table desk; do
  OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/vg-bce-val-noD.pt --pairs mn5v_pairs8 --classes $c --recon-loss bce --steps 750 --noise-decay-steps 750 --run-name vg-sepbce-$c-val --quiet
done
# B: one-class photo models, validation (vg-mix-val's command with --classes)
for c in chair table desk; do
  OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val-noD.pt --pairs mn5v_mix8 --classes $c --steps 750 --noise-decay-steps 750 --run-name vg-sepmix-$c-val --quiet
done
for r in sepbce sepmix; do for c in chair table desk; do for d in mn5v_pairs4 mn5v_photo_val4; do
  $G eval reconstruction --checkpoint runs/vg-$r-$c-val --data $d --classes $c --out ev/vg_${r}_${c}_val_$d.json; done; done; done
# C: the L2 and BCE one-class models averaged; and (a probe) the one-class photo model averaged with vg-mix-val
for c in chair table desk; do
  $G eval reconstruction --checkpoint runs/vg-sep-$c-val+runs/vg-sepbce-$c-val --data mn5v_pairs4 --classes $c --out ev/vg_pair_${c}_val_mn5v_pairs4.json
done
for c in chair table; do $G eval reconstruction --checkpoint runs/vg-sepmix-$c-val+runs/vg-mix-val --data mn5v_photo_val4 --classes $c --out ev/vg_mixpair_${c}_val_mn5v_photo_val4.json; done
# full length (rules B and C passed): runs/vaegan-bce without D, then BCE one-class models; one-class photo models
python -c "import torch; d=torch.load('runs/vaegan-bce/snapshot.pt', weights_only=True); d.pop('D'); d.pop('D_opt', None); torch.save(d, 'runs/vaegan-bce-noD.pt')"
for c in chair table desk; do
  OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from runs/vaegan-bce-noD.pt --pairs mn5_pairs8 --classes $c --recon-loss bce --steps 750 --noise-decay-steps 750 --run-name sepbce-$c --quiet
done
for c in chair table desk sofa bed; do
  OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders --pairs mn5_mix8 --classes $c --steps 750 --noise-decay-steps 750 --run-name sepmix-$c --quiet
done
# (the full-length BCE runs above started from runs/vaegan-bce-noD.pt, a copy of runs/vaegan-bce/snapshot.pt without D;
#  `--init-from runs/vaegan-bce/snapshot.pt --fresh-d` trains exactly the same: tests/test_vaegan.py::test_fresh_d_is_a_copy_without_d)
# test: see s16/testA.sh and testB.sh, copied here
for c in chair table desk; do $G eval reconstruction --checkpoint runs/sepbce-$c --data mn5_pairs4 --classes $c --out ev/sepbce_${c}_pairs4.json; done
PC="bed=vaegan-mn5-renders-bed chair=vaegan-mn5-renders-chair+runs/sepbce-chair desk=vaegan-mn5-renders-desk+runs/sepbce-desk sofa=vaegan-mn5-renders-sofa table=vaegan-mn5-renders-table+runs/sepbce-table"
$G eval reconstruction --data mn5_pairs4 --per-class $PC --out ev/pair_mn5_pairs4.json
$G eval reconstruction --data mn5_photo_test4 --per-class $PC --out ev/pair_mn5_photo_test4.json
for c in bed chair desk sofa table; do $G eval reconstruction --checkpoint runs/sepmix-$c --data mn5_photo_test4 --classes $c --out ev/sepmix_${c}_photo4.json; done
PB="bed=runs/sepmix-bed chair=runs/sepmix-chair desk=runs/sepmix-desk sofa=runs/sepmix-sofa table=runs/sepmix-table"
$G eval reconstruction --data mn5_photo_test4 --per-class $PB --out ev/sepmix_mn5_photo_test4.json
$G eval reconstruction --data mn5_pairs4 --per-class $PB --out ev/sepmix_mn5_pairs4.json
# packaged (s16/pkg.sh), then scored again by name
for c in chair table desk; do
  $G models package runs/sepbce-$c --name vaegan-mn5-renders-$c-bce --command "gan3d train --model vaegan --preset cpu32 --init-from runs/vaegan-bce/snapshot.pt --fresh-d --pairs mn5_pairs8 --classes $c --recon-loss bce --steps 750 --noise-decay-steps 750 --run-name sepbce-$c" --eval ev/sepbce_${c}_pairs4.json --int8 G E --without D
done
for c in bed chair desk sofa table; do
  $G models package runs/sepmix-$c --name vaegan-mn5-$c --command "gan3d train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders --pairs mn5_mix8 --classes $c --steps 750 --noise-decay-steps 750 --run-name sepmix-$c" --eval ev/sepmix_${c}_photo4.json --int8 G E --without D
done
PC="bed=vaegan-mn5-renders-bed chair=vaegan-mn5-renders-chair+vaegan-mn5-renders-chair-bce desk=vaegan-mn5-renders-desk+vaegan-mn5-renders-desk-bce sofa=vaegan-mn5-renders-sofa table=vaegan-mn5-renders-table+vaegan-mn5-renders-table-bce"
$G eval reconstruction --data mn5_pairs4 --per-class $PC --out ev/pair_packaged_mn5_pairs4.json
$G eval reconstruction --data mn5_photo_test4 --per-class $PC --out ev/pair_packaged_mn5_photo_test4.json
PB="bed=vaegan-mn5-bed chair=vaegan-mn5-chair desk=vaegan-mn5-desk sofa=vaegan-mn5-sofa table=vaegan-mn5-table"
$G eval reconstruction --data mn5_photo_test4 --per-class $PB --out ev/sepmix_packaged_mn5_photo_test4.json
$G eval reconstruction --data mn5_pairs4 --per-class $PB --out ev/sepmix_packaged_mn5_pairs4.json
