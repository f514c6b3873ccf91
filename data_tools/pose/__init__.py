"""The pose stage: MANO and procedural hands, objects, camera, trajectories, the condition renderer and the toy world.

Imports ``data_tools.io`` and ``data_tools.maps``; never a stage package.
"""
