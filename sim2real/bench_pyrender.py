"""Comparison benchmark: the same scene as ``sim2real.bench_render`` rendered by pyrender (OSMesa/EGL).

pyrender is not a project dependency (it pins PyOpenGL 3.1.0 and needs libOSMesa or EGL), so this runs in two
steps::

    python -m sim2real.bench_pyrender dump --out /tmp/scene.npz          # project venv: per-frame meshes + camera
    PYOPENGL_PLATFORM=osmesa /path/to/pyrender-venv/bin/python sim2real/bench_pyrender.py render /tmp/scene.npz

The ``render`` step imports only numpy and pyrender. It times a colour+depth pass and a flat segmentation pass
per frame (a lower bound: pyrender has no normal-map pass without a custom shader, and keypoints/colouring are
extra).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def dump(out: str, frames: int, height: int, width: int, obj_name: str) -> None:
    """Write the benchmark scene (hand and object vertices per frame, faces, camera) to ``out``."""
    from data_tools.pose.objects import resolve_object
    from data_tools.pose.procedural_hand import load_hand_model
    from data_tools.pose.trajectory import generate_grasp_trajectory

    hand = load_hand_model(None)
    obj = resolve_object(obj_name)
    traj = generate_grasp_trajectory(hand, obj, obj_name, frames, height, width, seed=0, name="bench")
    verts = hand(traj.hand_global_orient, traj.hand_pose, None, traj.hand_transl).vertices.detach().numpy()
    cam = traj.camera.scaled(height, width)
    np.savez(out, hand_vertices=verts, hand_faces=hand.faces, object_vertices=obj.vertices[None] + traj.object_transl[:, None],
             object_faces=obj.faces, K=cam.K, R=cam.rotation, t=cam.translation, size=np.array([height, width]))


def render(scene_path: str, repeats: int) -> dict:
    """Time pyrender on the dumped scene; returns frames/s."""
    import pyrender

    scene_data = np.load(scene_path)
    h, w = (int(x) for x in scene_data["size"])
    k, rot, trans = scene_data["K"], scene_data["R"], scene_data["t"]
    pose = np.eye(4)                                   # OpenCV world->camera  ->  OpenGL camera->world
    pose[:3, :3], pose[:3, 3] = rot.T, -rot.T @ trans
    pose[:3, 1:3] *= -1
    camera = pyrender.IntrinsicsCamera(k[0, 0], k[1, 1], k[0, 2], k[1, 2], znear=0.01, zfar=10.0)
    renderer = pyrender.OffscreenRenderer(w, h)
    n = len(scene_data["hand_vertices"])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for t in range(n):
            scene = pyrender.Scene(ambient_light=[0.3, 0.3, 0.3])
            meshes = []
            for key, color in (("hand", [0.9, 0.7, 0.6, 1.0]), ("object", [0.9, 0.8, 0.1, 1.0])):
                prim = pyrender.Primitive(positions=scene_data[f"{key}_vertices"][t].astype(np.float32),
                                          indices=scene_data[f"{key}_faces"].astype(np.uint32),
                                          material=pyrender.MetallicRoughnessMaterial(baseColorFactor=color))
                meshes.append(scene.add(pyrender.Mesh([prim])))
            scene.add(camera, pose=pose)
            scene.add(pyrender.DirectionalLight(intensity=3.0), pose=pose)
            renderer.render(scene)                                              # colour + depth
            seg = {node: (i + 1) * 60 for i, node in enumerate(meshes)}
            renderer.render(scene, pyrender.RenderFlags.SEG, seg)               # flat class colours
        times.append(time.perf_counter() - start)
    renderer.delete()
    return {"backend": "pyrender-" + __import__("os").environ.get("PYOPENGL_PLATFORM", "default"), "frames": n,
            "height": h, "width": w, "passes": "color+depth, seg", "fps_best": round(n / min(times), 2),
            "fps_median": round(n / sorted(times)[len(times) // 2], 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="write the scene (project venv)")
    d.add_argument("--out", required=True)
    d.add_argument("--frames", type=int, default=49)
    d.add_argument("--height", type=int, default=480)
    d.add_argument("--width", type=int, default=720)
    d.add_argument("--object", default="mustard_bottle")
    r = sub.add_parser("render", help="time pyrender on a dumped scene (pyrender venv)")
    r.add_argument("scene")
    r.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.out, args.frames, args.height, args.width, args.object)
    else:
        print(json.dumps(render(args.scene, args.repeats)))
    return 0


if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
