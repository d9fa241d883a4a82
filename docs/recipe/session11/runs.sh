# session 11 runs (cwd: an empty folder beside ../shared; the machine was new, so session 9's
# vaegan-bal8 run folder, needed for the photo fine-tune, was gone and is trained again first)
G=gan3d
$G data prepare ../shared/data/modelnet10-32/modelnet10.npz --out mn5_32.npz --resolution 32 --classes bed chair desk sofa table
$G data render mn5_32.npz --out mn5_pairs8 --views 8 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_photo_test4 --split test --views 4 --size 128 --photo
$G data render mn5_32.npz --out mn5_pairs4 --views 4 --size 128 --random-background --random-color
$G data render mn5_32.npz --out mn5_photo8 --photo --views 8 --size 128
# vaegan-bal8 again (session 9's command; two threads), and scored on the plain test renders to check it
OMP_NUM_THREADS=2 $G train --model vaegan --preset cpu32 --pairs mn5_pairs8 --steps 3000 --balance-classes --run-name vaegan-bal8 --quiet
$G eval reconstruction --checkpoint runs/vaegan-bal8 --data mn5_pairs4 --out ev/vaegan_bal8_rerun_test.json
# the photo model of session 10's rule
OMP_NUM_THREADS=2 $G train --model vaegan --preset cpu32 --init-from runs/vaegan-bal8/snapshot.pt --pairs mn5_photo8 --steps 750 --noise-decay-steps 750 --balance-classes --run-name vaegan-photoft --quiet
for d in mn5_photo_test4 mn5_pairs4; do $G eval reconstruction --checkpoint runs/vaegan-photoft --data $d --out ev/vaegan_photoft_$d.json; done
# the threshold question, on the fine-tuned model's own training images (no test image looked at)
$G eval reconstruction --checkpoint runs/vaegan-photoft --data mn5_photo8 --split train --max-pairs 2000 --thresholds 0.4 0.3 0.2 0.15 0.1 0.05 --out ev/vaegan_photoft_train_thresholds.json
