# session 9 runs (cwd /work/data, OMP_NUM_THREADS=1 each, two at a time)
G=/work/main/.venv/bin/gan3d
# slot B: chairs, wider D beside the same small G (the one lever against chair-ema of session 4)
OMP_NUM_THREADS=1 $G train --preset cpu32 --data chairs32_r1.npz --ema 0.999 --d-width 2 --eval-every 500 --eval-samples 100 --steps 3500 --run-name chair-dw2 --quiet
# slot A: 3D-VAE-GAN at full length with 8 views per shape and class-balanced batches (chosen on validation in session 8)
$G data render mn5_32.npz --out mn5_pairs8 --views 8 --size 128 --random-background --random-color
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5_pairs8 --steps 3000 --balance-classes --run-name vaegan-bal8 --quiet
# slot A after vaegan-bal8: the focal reconstruction loss on top of 8 views + balanced batches, on the validation split (session 8's vg-bal8-val plus one lever)
OMP_NUM_THREADS=1 $G train --model vaegan --preset cpu32 --pairs mn5v_pairs8 --steps 1500 --noise-decay-steps 1500 --balance-classes --recon-loss focal --run-name vg-bal8-focal-val --quiet
