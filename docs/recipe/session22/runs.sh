# session 22 runs (cwd /work/data; one thread per run, two at a time). Data from session18/runs.sh.
G=/work/main/.venv/bin/gan3d
export OMP_NUM_THREADS=1
# rule R: session 20's mn10-con4 (stopped at step 1,546) resumed to 4,000 steps
$G train --resume runs/mn10-con4 --steps 4000 --quiet
# rule T: the photo models' E fit to 3,000 steps on validation (table, then chair, on the second thread)
for c in table chair; do
  $G train --model vaegan --preset cpu32 --init-from runs/vg-mix-$c-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_mix8 --classes $c --steps 3000 --snapshot-every 750 --keep-snapshots --ema 0.999 --recon-loss wbce --recon-pos-weight 4 --run-name vg-mixwb4L-$c-val --quiet
done
