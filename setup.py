"""Install the two experiments of the thesis reproduction as importable packages."""
from setuptools import setup

setup(
    name='alternate-lenses',
    version='0.1.0',
    description=('Chainer reproduction of "Exploring Representation Learning Through '
                 'Alternate Lenses" (Cutilli, 2021): Counting and Friendly'),
    packages=['lenses_common', 'Counting', 'Friendly'],
    license='MIT',
    classifiers=['License :: OSI Approved :: MIT License'],
    python_requires='>=3.9',
    install_requires=[
        'chainer==7.8.1',
        'numpy>=1.22',
        'shapely>=2',
        'pillow',
        'matplotlib',
        # labelling and K-means (SciPy), progress bars outside the Trainer (tqdm)
        'scipy>=1.9',
        'tqdm>=4.60',
    ],
    extras_require={
        'gpu': ['cupy-cuda12x'],
        'test': ['pytest'],
        'lint': ['ruff==0.17.6'],  # `make lint`; the Makefile pins the same version
        # `make install-mpi`: MPI without a system one (mpiexec lands in the venv's bin)
        'mpi': ['mpich', 'mpi4py>=4'],
    },
    entry_points={'console_scripts': [
        'counting-generate = Counting.generate:main',
        'counting-train = Counting.train:main',
        'counting-evaluate = Counting.evaluate:main',
        'counting-saliency = Counting.saliency:main',
        'counting-detect = Counting.detect:main',
        'counting-run = Counting.run_all:main',
        'friendly-mnist = Friendly.mnist.__main__:main',
        'friendly-train = Friendly.train:main',
        'friendly-evaluate = Friendly.evaluate:main',
        'friendly-run = Friendly.run_all:main',
    ]},
)
