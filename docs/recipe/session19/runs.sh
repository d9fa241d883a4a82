# session 19 runs (cwd /work/data; one thread per run, two at a time). Data and parents from session18/runs.sh.
G=/work/main/.venv/bin/gan3d
# rule J
for W in 2 4; do for c in chair table; do
  $G train --model vaegan --preset cpu32 --init-from runs/vg-sepema-$c-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_pairs8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight $W --run-name vg-eowb$W-$c-val --quiet
  $G eval reconstruction --checkpoint runs/vg-eowb$W-$c-val --data mn5v_pairs4 --classes $c --out ev/vg-eowb$W-${c}-val_mn5v_pairs4.json
done; done

# test side of J-a (trained while validation finished; the rule passed)
for c in chair table desk; do
  $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders-$c --encoder-only --encoder-only-z mean --pairs mn5_pairs8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name eowb2-$c --quiet
done

# rule K: codes of the training shapes, then E regressed onto them
for c in chair table; do
  $G explore invert --checkpoint runs/vg-sepema-$c-val/snapshot.pt --data mn5_32_val.npz --split train --classes $c --limit 10000 --starts 1 --iters 80 --lr 0.1 --prior-weight 0.1 --encoder-checkpoint runs/vg-sepema-$c-val/snapshot.pt --pairs mn5v_pairs8 --out inv/$c-train
  $G train --model vaegan --preset cpu32 --init-from runs/vg-sepema-$c-val/snapshot.pt --encoder-only --latent-targets inv/$c-train/invert_set.npz --pairs mn5v_pairs8 --classes $c --steps 750 --ema 0.999 --run-name vg-lt-$c-val --quiet
  $G eval reconstruction --checkpoint runs/vg-lt-$c-val --data mn5v_pairs4 --classes $c --out ev/vg-lt-$c-val_mn5v_pairs4.json
done

# rule L: J-a on the photo recipe, scored on photo-like validation renders
for c in chair table; do
  $G train --model vaegan --preset cpu32 --init-from runs/vg-mix-$c-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_mix8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name vg-mixwb2-$c-val --quiet
  $G eval reconstruction --checkpoint runs/vg-mixwb2-$c-val --data mn5v_photo_val4 --classes $c --out ev/vg-mixwb2-$c-val_mn5v_photo_val4.json
done

# J-a's test-side runs packaged into a staging copy of the models folder, scored there, then copied into the package
mkdir -p stage && cp /work/main/src/gan3d/zoo/models/* stage/
for c in chair table desk; do
  $G eval reconstruction --checkpoint runs/eowb2-$c --data mn5_pairs4 --classes $c --out ev/eowb2_${c}_pairs4.json
  $G models package runs/eowb2-$c --name vaegan-mn5-renders-$c --out stage --command "..." --eval ev/eowb2_${c}_pairs4.json --int8 G E --without D   # the card holds the full command
done
PC="bed=vaegan-mn5-renders-bed chair=vaegan-mn5-renders-chair+vaegan-mn5-renders-chair-bce desk=vaegan-mn5-renders-desk+vaegan-mn5-renders-desk-bce sofa=vaegan-mn5-renders-sofa table=vaegan-mn5-renders-table+vaegan-mn5-renders-table-bce"
PS="bed=vaegan-mn5-renders-bed chair=vaegan-mn5-renders-chair desk=vaegan-mn5-renders-desk sofa=vaegan-mn5-renders-sofa table=vaegan-mn5-renders-table"
$G data render mn5_32.npz --out mn5_photo_test4 --split test --views 4 --size 128 --photo
for d in mn5_pairs4 mn5_photo_test4; do
  GAN3D_MODELS_DIR=stage $G eval reconstruction --data $d --per-class $PC --out ev/eowb2_pairs_packaged_$d.json
  GAN3D_MODELS_DIR=stage $G eval reconstruction --data $d --per-class $PS --out ev/eowb2_singles_packaged_$d.json
done

# rule M: J-a for bed and sofa (controls: session 15's one-class validation command)
for c in bed sofa; do
  $G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val/snapshot.pt --fresh-d --pairs mn5v_pairs8 --classes $c --steps 750 --noise-decay-steps 750 --run-name vg-sep-$c-val --quiet
  $G train --model vaegan --preset cpu32 --init-from runs/vg-sep-$c-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_pairs8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name vg-eowb2-$c-val --quiet
  for r in vg-sep-$c-val vg-eowb2-$c-val; do $G eval reconstruction --checkpoint runs/$r --data mn5v_pairs4 --classes $c --out ev/${r}_mn5v_pairs4.json; done
  # test side, trained while validation ran
  $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-renders-$c --encoder-only --encoder-only-z mean --pairs mn5_pairs8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name eowb2-$c --quiet
done

# rule L-b: heavier weights on the photo recipe
for W in 4 8; do for c in chair table; do
  $G train --model vaegan --preset cpu32 --init-from runs/vg-mix-$c-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_mix8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight $W --run-name vg-mixwb$W-$c-val --quiet
  $G eval reconstruction --checkpoint runs/vg-mixwb$W-$c-val --data mn5v_photo_val4 --classes $c --out ev/vg-mixwb$W-$c-val_mn5v_photo_val4.json
done; done

# L-b1 passed: test side for all five photo models, on the 8-view plain + photo-like training renders (session 12's commands)
$G data render mn5_32.npz --out mn5_photo8 --photo --views 8 --size 128
$G data merge-pairs mn5_pairs8 mn5_photo8 --out mn5_mix8
for c in chair table desk bed sofa; do
  $G train --model vaegan --preset cpu32 --init-from vaegan-mn5-$c --encoder-only --encoder-only-z mean --pairs mn5_mix8 --classes $c --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 4 --run-name mixwb4-$c --quiet
  $G eval reconstruction --checkpoint runs/mixwb4-$c --data mn5_photo_test4 --classes $c --out ev/mixwb4_${c}_photo4.json
  $G models package runs/mixwb4-$c --name vaegan-mn5-$c --out stage --command "..." --eval ev/mixwb4_${c}_photo4.json --int8 G E --without D   # the card holds the full command
done
PP="bed=vaegan-mn5-bed chair=vaegan-mn5-chair desk=vaegan-mn5-desk sofa=vaegan-mn5-sofa table=vaegan-mn5-table"
for d in mn5_photo_test4 mn5_pairs4; do GAN3D_MODELS_DIR=stage $G eval reconstruction --data $d --per-class $PP --out ev/mixwb4_packaged_$d.json; done
