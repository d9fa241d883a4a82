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
