#!/usr/bin/env python3
"""Prints a crate's module graph (which file uses which sibling module) and fails if it
has a cycle: files inside a crate must not import back up.

Usage: scripts/module-deps.py crates/sequencer/src
"""
import os, re, sys

src = sys.argv[1]
mods = {f[:-3] for f in os.listdir(src) if f.endswith('.rs') and f not in ('lib.rs', 'main.rs')}
graph = {}
for m in sorted(mods):
    text = open(os.path.join(src, m + '.rs')).read()
    # Tests may use anything; only the module's own code counts.
    text = text.split('#[cfg(test)]')[0]
    code = '\n'.join(l.split('//')[0] for l in text.splitlines())
    deps = set(re.findall(r'crate::([a-z_][a-z0-9_]*)', code))
    # `crate::Type` through the crate root's re-exports: resolve by the defining module.
    for ty in set(re.findall(r'crate::([A-Z][A-Za-z0-9_]*)', code)):
        for other in mods:
            if re.search(r'pub(\(crate\))? (struct|enum|trait|type) ' + ty + r'\b', open(os.path.join(src, other + '.rs')).read()):
                deps.add(other)
    graph[m] = sorted(d for d in deps if d in mods and d != m)
for m, deps in graph.items():
    print(f"{m} -> {', '.join(deps) or '-'}")
state = {}
def visit(m, path):
    if state.get(m) == 1:
        cycle = path[path.index(m):] + [m]
        sys.exit('cycle: ' + ' -> '.join(cycle))
    if state.get(m) == 2:
        return
    state[m] = 1
    for d in graph[m]:
        visit(d, path + [m])
    state[m] = 2
for m in graph:
    visit(m, [])
print('no cycles')
