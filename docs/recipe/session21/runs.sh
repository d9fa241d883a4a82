# session 21 runs (cwd /work/data; one thread per run, two at a time). Data from session18/runs.sh.
G=/work/main/.venv/bin/gan3d
export OMP_NUM_THREADS=1
# rule P on validation: chair on one thread, table on the other (C=chair or table)
$G train --model vaegan --preset cpu32 --init-from runs/vg-bal8-val/snapshot.pt --pairs mn5v_pairs8 --classes $C --steps 750 --noise-decay-steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name vg-sepwb-$C-val --quiet
$G train --model vaegan --preset cpu32 --init-from runs/vg-sepwb-$C-val/snapshot.pt --encoder-only --encoder-only-z mean --pairs mn5v_pairs8 --classes $C --steps 750 --ema 0.999 --recon-loss wbce --recon-pos-weight 2 --run-name vg-eowbwb-$C-val --quiet
# rule Q: the shipped chair continued with the join term (a third process beside rule P's two for a while)
$G train --preset cpu32 --init-from chair --data chairs32_r1.npz --ema 0.999 --instance-noise 0 --r1 0.1 --fragment-loss 0.3 --fragment-join 3 --steps 6000 --eval-every 1000 --eval-samples 100 --snapshot-every 1000 --keep-snapshots --run-name chair-join --quiet
E=/work/main/docs/recipe/session21/ev
# rule P scored: triple, the pair it is compared with, and the member alone
for c in chair table; do
  $G eval reconstruction --checkpoint runs/vg-eowb2-$c-val+runs/vg-eobce-$c-val+runs/vg-eowbwb-$c-val --data mn5v_pairs4 --classes $c --out $E/triple_${c}_val.json
  $G eval reconstruction --checkpoint runs/vg-eowb2-$c-val+runs/vg-eobce-$c-val --data mn5v_pairs4 --classes $c --out $E/pair_${c}_val.json
  $G eval reconstruction --checkpoint runs/vg-eowbwb-$c-val --data mn5v_pairs4 --classes $c --out $E/eowbwb_${c}_val.json
done
# rule Q-b: the join term at weight 1
$G train --preset cpu32 --init-from chair --data chairs32_r1.npz --ema 0.999 --instance-noise 0 --r1 0.1 --fragment-loss 1 --fragment-join 3 --steps 6000 --eval-every 1000 --eval-samples 100 --snapshot-every 1000 --keep-snapshots --run-name chair-join1 --quiet
# rule Q's comparison row: the shipped chair scored again on this machine
$G eval generation --checkpoint chair --data chairs32_r1.npz --seeds 0-99 --latent-sets 4 --distances iou --no-context --out $E/chair_shipped_sets4.json
# rule Q-c: the join term at weight 3 (Q stopped after its +3,000 snapshot)
$G train --preset cpu32 --init-from chair --data chairs32_r1.npz --ema 0.999 --instance-noise 0 --r1 0.1 --fragment-loss 3 --fragment-join 3 --steps 6000 --eval-every 1000 --eval-samples 100 --snapshot-every 1000 --keep-snapshots --run-name chair-join3 --quiet
# rules Q, Q-b, Q-c scored at +3,000 (S=chair-join, chair-join1, chair-join3)
$G eval generation --checkpoint runs/$S/snapshot_003000.pt --data chairs32_r1.npz --seeds 0-99 --latent-sets 4 --distances iou --no-context --out $E/${S}_003000_sets4.json
# Q-b and Q-c were stopped after their +3,000 snapshots (the step the rules fixed)
# a record after rule P's verdict: the BCE and weighted-BCE members as a pair, on validation
for c in chair table; do
  $G eval reconstruction --checkpoint runs/vg-eobce-$c-val+runs/vg-eowbwb-$c-val --data mn5v_pairs4 --classes $c --out $E/pair_bce_wbce_${c}_val.json
done
