//! The text waterfall of traces ([`waterfall`]): one row per span, nested, with the queue gap.

use super::*;

pub(super) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(super) fn since(t: SystemTime, origin: SystemTime) -> Duration {
    t.duration_since(origin).unwrap_or(Duration::ZERO)
}

pub(super) fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "CLIENT",
        SpanKind::Server => "SERVER",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

/// Renders the spans as waterfalls, one per trace: an indented tree (children under their
/// parent, siblings by start time) with a bar per span on a time axis shared by the trace.
///
/// The gap between a producer span's end and the start of a consumer span that it parents or
/// links to is drawn with `·` and labelled `queue wait`. Times are milliseconds from the start of
/// the trace. Spans whose parent is not in `spans` are drawn as roots.
pub fn waterfall(spans: &[SpanData]) -> String {
    let mut out = String::new();
    let mut traces: Vec<TraceId> = Vec::new();
    for s in spans {
        if !traces.contains(&s.span_context.trace_id()) {
            traces.push(s.span_context.trace_id());
        }
    }
    for trace_id in traces {
        let mut in_trace: Vec<&SpanData> =
            spans.iter().filter(|s| s.span_context.trace_id() == trace_id).collect();
        in_trace.sort_by_key(|s| s.start_time);
        render_trace(trace_id, &in_trace, spans, &mut out);
    }
    out
}

pub(super) fn render_trace(trace_id: TraceId, spans: &[&SpanData], all: &[SpanData], out: &mut String) {
    let Some(origin) = spans.iter().map(|s| s.start_time).min() else { return };
    let end = spans.iter().map(|s| s.end_time).max().unwrap_or(origin);
    let total = since(end, origin).max(Duration::from_micros(1));
    let ids: HashMap<SpanId, &SpanData> = spans.iter().map(|s| (s.span_context.span_id(), *s)).collect();
    let producers: HashMap<SpanId, &SpanData> = all
        .iter()
        .filter(|s| s.span_kind == SpanKind::Producer)
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    let _ = writeln!(out, "trace {trace_id}  ({} spans, {:.1} ms)", spans.len(), millis(total));

    // Depth-first from the roots.
    let mut order: Vec<(usize, &SpanData)> = Vec::new();
    let mut stack: Vec<(usize, &SpanData)> =
        spans.iter().filter(|s| !ids.contains_key(&s.parent_span_id)).rev().map(|s| (0, *s)).collect();
    while let Some((depth, s)) = stack.pop() {
        order.push((depth, s));
        let children = spans.iter().filter(|c| c.parent_span_id == s.span_context.span_id()).rev();
        stack.extend(children.map(|c| (depth + 1, *c)));
    }

    let label_width = order.iter().map(|(d, s)| d * 2 + s.name.len()).max().unwrap_or(0).min(48);
    let col = |t: SystemTime| -> usize {
        let frac = since(t, origin).as_secs_f64() / total.as_secs_f64();
        ((frac * BAR_WIDTH as f64).round() as usize).min(BAR_WIDTH)
    };
    for (depth, s) in order {
        let mut bar = vec![' '; BAR_WIDTH];
        let (a, b) = (col(s.start_time), col(s.end_time).max(col(s.start_time) + 1).min(BAR_WIDTH));
        let mut note = String::new();
        // Queue wait: from the producing span's end to this consumer span's start.
        if s.span_kind == SpanKind::Consumer {
            let producer = producers
                .get(&s.parent_span_id)
                .copied()
                .or_else(|| s.links.iter().find_map(|l| producers.get(&l.span_context.span_id()).copied()));
            if let Some(p) = producer.filter(|p| p.end_time < s.start_time) {
                let gap = s.start_time.duration_since(p.end_time).unwrap_or(Duration::ZERO);
                for c in bar.iter_mut().take(a).skip(col(p.end_time)) {
                    *c = '·';
                }
                note = format!("  queue wait {:.1} ms", millis(gap));
            }
        }
        for c in bar.iter_mut().take(b).skip(a.min(BAR_WIDTH - 1)) {
            *c = '█';
        }
        let status = if matches!(s.status, Status::Error { .. }) { "  ERROR" } else { "" };
        let label = format!("{}{}", "  ".repeat(depth), s.name);
        let _ = writeln!(
            out,
            "{label:<label_width$}  |{}| {:>8.1} ms {:>8.1} ms  {}{status}{note}",
            bar.into_iter().collect::<String>(),
            millis(since(s.start_time, origin)),
            millis(s.end_time.duration_since(s.start_time).unwrap_or(Duration::ZERO)),
            kind_name(&s.span_kind),
        );
    }
}
