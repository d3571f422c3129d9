"""The documentation stays true: its links resolve, its commands exist.

Every relative link of the tracked Markdown files points at a tracked file or folder, and every
``#anchor`` at a heading of its target (GitHub's heading ids); every ``python -m X`` of the
project's packages that the docs name answers ``--help`` with exit status 0 and the usage line
``usage: python -m X``; every ``make TARGET`` they name exists (``make -n`` only prints).
"""
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys

import pytest


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ('Counting', 'Friendly', 'lenses_common')

FENCE = re.compile(r'^\s*(```|~~~)')
CODE_SPAN = re.compile(r'(`+)(.+?)\1')
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
HEADING = re.compile(r'^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
PYTHON_M = re.compile(r'python3?\s+-m\s+([A-Za-z_][\w.]*)')
MAKE = re.compile(r'(?<![\w$(-])make[ \t]+((?:[A-Z][A-Z0-9_]*=\S*[ \t]+)*)([a-z][\w-]*)')


def tracked_files(root=ROOT):
    """Paths (relative, with /) of the files git tracks, or of every file when git cannot say."""
    try:
        out = subprocess.run(['git', 'ls-files', '-z'], cwd=root, capture_output=True,
                             check=True, timeout=60).stdout
        files = [f for f in out.decode('utf-8').split('\0') if f]
        if files:
            return files
    except (OSError, subprocess.SubprocessError):
        pass
    skip = {'.git', '.venv', '.venv-numpy2', 'results', 'data', 'wheelhouse', 'build'}
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith('.')]
        for name in names:
            files.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, '/'))
    return files


def prose_and_code(text):
    """(prose lines with code removed, code text): fenced blocks and code spans are code."""
    prose, code, in_fence = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            prose.append('')
            continue
        if in_fence:
            code.append(line)
            prose.append('')
            continue
        code.extend(m.group(2) for m in CODE_SPAN.finditer(line))
        prose.append(CODE_SPAN.sub(lambda m: 'x' * len(m.group(0)), line))
    return prose, '\n'.join(code)


def heading_ids(text):
    """The ids GitHub gives the headings of a Markdown text."""
    ids, seen, in_fence = set(), {}, False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        m = None if in_fence else HEADING.match(line)
        if m is None:
            continue
        title = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', m.group(2))   # a link: its text
        title = re.sub(r'<[^>]+>', '', title)                           # inline HTML
        slug = re.sub(r'[^\w\- ]', '', title.lower()).replace(' ', '-')
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else '{}-{}'.format(slug, n))
    return ids


def broken_links(root=ROOT, files=None):
    """One line per relative link of the Markdown files that does not resolve."""
    files = tracked_files(root) if files is None else files
    present = set(files)
    folders = {f.rsplit('/', i)[0] for f in files for i in range(1, f.count('/') + 1)}
    ids = {}
    problems = []
    for md in sorted(f for f in files if f.endswith('.md')):
        with open(os.path.join(root, md), encoding='utf-8') as f:
            text = f.read()
        prose, _ = prose_and_code(text)
        base = os.path.dirname(md)
        for number, line in enumerate(prose, 1):
            for m in LINK.finditer(line):
                target = m.group(1)
                if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):
                    continue                                    # http:, https:, mailto:
                path, _, anchor = target.partition('#')
                where = '{}:{}: {}'.format(md, number, target)
                if path:
                    resolved = os.path.normpath(os.path.join(base, path)).replace(os.sep, '/')
                    if resolved not in present and resolved not in folders:
                        problems.append(where + ' (no such tracked file)')
                        continue
                else:
                    resolved = md
                if anchor:
                    if not resolved.endswith('.md') or resolved not in present:
                        problems.append(where + ' (an anchor into a file that is not Markdown)')
                        continue
                    if resolved not in ids:
                        with open(os.path.join(root, resolved), encoding='utf-8') as f:
                            ids[resolved] = heading_ids(f.read())
                    if anchor not in ids[resolved]:
                        problems.append(where + ' (no heading #{} in {})'.format(anchor, resolved))
    return problems


def named_commands(root=ROOT, files=None):
    """(modules of the project run with python -m, make targets) that the Markdown files name."""
    files = tracked_files(root) if files is None else files
    modules, targets = set(), set()
    for md in (f for f in files if f.endswith('.md')):
        with open(os.path.join(root, md), encoding='utf-8') as f:
            text = f.read()
        _, code = prose_and_code(text)
        for m in PYTHON_M.finditer(text):
            name = m.group(1).rstrip('.')
            if name.split('.')[0] in PACKAGES:
                modules.add(name)
        for m in MAKE.finditer(code):
            targets.add(m.group(2))
    return sorted(modules), sorted(targets)


MODULES, TARGETS = named_commands()


def test_the_docs_name_commands():
    # The scan itself must find something, or the tests below would pass vacuously.
    assert 'Friendly.train' in MODULES and 'Counting.run_all' in MODULES
    assert {'friendly', 'counting', 'help', 'clean'} <= set(TARGETS)


def test_every_relative_link_resolves():
    problems = broken_links()
    assert not problems, 'broken links:\n' + '\n'.join(problems)


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'README.md').write_text(
        '# Title\n\n## Quick start: `make` it\n\n'
        '[ok](docs/a.md) [ok](#quick-start-make-it) [ok](docs/a.md#the-a-page)\n'
        '[gone](docs/missing.md) [gone](#no-such-heading) [gone](docs/a.md#nowhere)\n'
        '`[not a link](nowhere.md)` [web](https://example.org/x.md)\n'
        '```\n[in a code block](nowhere.md)\n```\n', encoding='utf-8')
    (tmp_path / 'docs' / 'a.md').write_text('# The A page\n\n[up](../README.md#title)\n',
                                            encoding='utf-8')
    problems = broken_links(str(tmp_path), ['README.md', 'docs/a.md'])
    assert len(problems) == 3, problems
    assert problems[0].startswith('README.md:6: docs/missing.md')
    assert 'no heading #no-such-heading' in problems[1]
    assert 'no heading #nowhere in docs/a.md' in problems[2]


def test_heading_ids_follow_github():
    ids = heading_ids('# A\n## The quick preset\'s counter: `edgepool`\n## Table 3.1 (thesis)\n'
                      '## Dup\n## Dup\n```\n# not a heading\n```\n')
    assert ids == {'a', 'the-quick-presets-counter-edgepool', 'table-31-thesis', 'dup', 'dup-1'}


def _help(module):
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-m', module, '--help'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def helps():
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(zip(MODULES, pool.map(_help, MODULES)))


@pytest.mark.slow
@pytest.mark.parametrize('module', MODULES)
def test_every_named_module_answers_help(helps, module):
    done = helps[module]
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith('usage: python -m {} '.format(module)), done.stdout[:200]


@pytest.mark.skipif(shutil.which('make') is None, reason='make is not installed')
@pytest.mark.parametrize('target', TARGETS)
def test_every_named_make_target_exists(target):
    env = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL')}
    done = subprocess.run(['make', '-n', target], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
