# session 9 evaluations (cwd /work/data)
G=/work/main/.venv/bin/gan3d
# the shipped modelnet10 (session 8's mn10-long at +3,000 steps), packaged, then scored as packaged
$G eval generation --checkpoint runs/mn10-long/snap_3000.pt --data modelnet10_32.npz --n-samples 100 --distances iou --out ev/mn10_long_3000_gen.json
$G models package runs/mn10-long/snap_3000.pt --name modelnet10 --int8 G --eval ev/modelnet10_classify.json ev/modelnet10_generation.json --wall-time-min 83 --out /work/main/src/gan3d/zoo/models --data-desc "..." --command "..."
$G eval classify --checkpoint modelnet10 --data modelnet10_32.npz --shifted reframe erode dilate --also-test chairs32_r1.npz --out /work/main/docs/results/modelnet10_shipped_classify_shifted.json
# vaegan-bal8, scored once on the held-out test renders, plain and photo-like
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vaegan-bal8 --data mn5_pairs4 --out ev/vaegan_bal8_test.json
OMP_NUM_THREADS=1 $G eval reconstruction --checkpoint runs/vaegan-bal8 --data mn5_photo_test4 --out ev/vaegan_bal8_photo.json
# packaged (G, E int8, no D) into a scratch models folder, scored as packaged, then packaged into the repo with that score
$G models package runs/vaegan-bal8 --name vaegan-mn5-renders --int8 G E --without D --out /tmp/zoo9 --command x
GAN3D_MODELS_DIR=/tmp/zoo9 $G eval reconstruction --checkpoint vaegan-mn5-renders --data mn5_pairs4 --out ev/vaegan_bal8_int8_plain.json
GAN3D_MODELS_DIR=/tmp/zoo9 $G eval reconstruction --checkpoint vaegan-mn5-renders --data mn5_photo_test4 --out ev/vaegan_bal8_int8_photo.json
$G models package runs/vaegan-bal8 --name vaegan-mn5-renders --int8 G E --without D --out /work/main/src/gan3d/zoo/models --eval ev/vaegan_bal8_int8_plain.json --wall-time-min 88 --data-desc "..." --command "gan3d train --model vaegan --preset cpu32 --pairs mn5_pairs8 --steps 3000 --balance-classes --run-name vaegan-bal8"
# chair-dw2: the final generation metrics, as for the shipped chair
OMP_NUM_THREADS=1 $G eval generation --checkpoint runs/chair-dw2 --data chairs32_r1.npz --n-samples 100 --distances iou chamfer --out ev/chair_dw2_gen.json
