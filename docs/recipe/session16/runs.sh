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
