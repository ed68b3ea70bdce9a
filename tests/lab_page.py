"""What tests/test_browser.py asks a JupyterLab page (with
--LabApp.expose_app_in_browser, so `window.jupyterapp` is there), in JavaScript."""

# True once the notebook's kernel is idle and no code cell waits ([*]) to run.
RUN_ALL_DONE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel.sessionContext.session?.kernel;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    const queued = cells.some(c => (c.promptNode?.textContent || '').includes('*'));
    return !!kernel && kernel.status === 'idle' && !queued;
}"""

CELL_REPORT = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    return cells.map((c, i) => {
        const outputs = c.model.outputs.toJSON();
        const errors = outputs.filter(o => o.output_type === 'error')
            .map(o => `${o.ename}: ${o.evalue}`.split('\\n')[0]);
        const tracebacks = outputs.filter(o => o.output_type === 'stream'
            && o.name === 'stderr' && String(o.text).includes('Traceback'));
        return {cell: i + 1, ran: c.model.executionCount !== null,
                errors: errors.concat(tracebacks.map(o => 'a Traceback on stderr'))};
    });
}"""

# Per code cell: how many widget views it has, how many show a rendered widget
# and how many show JupyterLab's "Error displaying widget" (or never loaded).
# A closed widget (a finished tqdm bar with leave=False) leaves an empty output.
WIDGETS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    return cells.map((c, i) => {
        const outputs = [...c.node.querySelectorAll('.jp-OutputArea-output')]
            .filter(o => !o.parentElement.closest('.jupyter-widgets'));
        return {cell: i + 1, calls_aelab_widget: /\\bwidgets\\.\\w+\\(/.test(
                    c.model.sharedModel.getSource()),
                views: c.model.outputs.toJSON().filter(o => o.data
                    && o.data['application/vnd.jupyter.widget-view+json']).length,
                rendered: outputs.filter(
                    o => o.querySelector(':scope > .jupyter-widgets')).length,
                broken: outputs.filter(o => /Error displaying widget|Loading widget/
                    .test(o.textContent)).length};
    }).filter(c => c.views || c.rendered || c.broken || c.calls_aelab_widget);
}"""


# Starts a watch on one widget's output area: resolves with the milliseconds
# from the next keydown or change event to the moment every picture in that area
# has a new source and is decoded (null if nothing changed within 10 s).
WATCH = """([selector, i]) => {
    const control = document.querySelectorAll(selector)[i];
    const area = control.closest('.jp-OutputArea-output');
    const srcs = () => [...area.querySelectorAll('img')].map(x => x.src).join('|');
    const before = srcs();
    let t0 = null;
    const start = () => { if (t0 === null) t0 = performance.now(); };
    document.addEventListener('keydown', start, {capture: true, once: true});
    document.addEventListener('change', start, {capture: true, once: true});
    window.__latency = new Promise(resolve => {
        const obs = new MutationObserver(async () => {
            if (t0 === null || srcs() === before || !area.querySelector('img')) return;
            obs.disconnect();
            await Promise.all([...area.querySelectorAll('img')]
                .map(x => x.decode().catch(() => null)));
            resolve(performance.now() - t0);
        });
        obs.observe(area, {subtree: true, childList: true, attributes: true,
                           attributeFilter: ['src']});
        setTimeout(() => { obs.disconnect(); resolve(null); }, 10000);
    });
}"""
