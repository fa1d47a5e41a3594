package dev.tandem.transformer.chat;

import java.time.ZonedDateTime;
import java.time.format.TextStyle;
import java.util.Collection;
import java.util.Iterator;
import java.util.Locale;
import java.util.Map;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;

/**
 * What transformers adds to the Jinja environment of a chat template: the globals {@code raise_exception(msg)}
 * and {@code strftime_now(fmt)}, and the filter {@code tojson} ({@code json.dumps(x, ensure_ascii=False)}, with
 * {@code indent} and {@code sort_keys}).
 */
final class TemplateGlobals {

    private TemplateGlobals() {
    }

    /** The message of the {@code raise_exception} call of the render in progress on this thread. */
    static final ThreadLocal<String> RAISED = new ThreadLocal<>();

    /** Thrown by {@code raise_exception} so that jinjava stops evaluating the expression. */
    static final class Raised extends RuntimeException {
        Raised(String message) {
            super(message, null, false, false);
        }
    }

    public static Object raiseException(Object message) {
        String text = message == null ? "None" : message.toString();
        if (RAISED.get() == null) {
            RAISED.set(text);
        }
        throw new Raised(text);
    }

    /** Python's {@code datetime.now().strftime(fmt)} for the directives of C89 and a few more, in English. */
    public static String strftimeNow(Object format) {
        return strftime(format == null ? "None" : format.toString(), ZonedDateTime.now());
    }

    static String strftime(String fmt, ZonedDateTime t) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < fmt.length(); i++) {
            char c = fmt.charAt(i);
            if (c != '%' || i + 1 == fmt.length()) {
                out.append(c);
                continue;
            }
            char d = fmt.charAt(++i);
            switch (d) {
                case 'a' -> out.append(t.getDayOfWeek().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'A' -> out.append(t.getDayOfWeek().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'b', 'h' -> out.append(t.getMonth().getDisplayName(TextStyle.SHORT, Locale.ENGLISH));
                case 'B' -> out.append(t.getMonth().getDisplayName(TextStyle.FULL, Locale.ENGLISH));
                case 'd' -> out.append(two(t.getDayOfMonth()));
                case 'e' -> out.append(String.format(Locale.ROOT, "%2d", t.getDayOfMonth()));
                case 'H' -> out.append(two(t.getHour()));
                case 'I' -> out.append(two(t.getHour() % 12 == 0 ? 12 : t.getHour() % 12));
                case 'j' -> out.append(String.format(Locale.ROOT, "%03d", t.getDayOfYear()));
                case 'm' -> out.append(two(t.getMonthValue()));
                case 'M' -> out.append(two(t.getMinute()));
                case 'p' -> out.append(t.getHour() < 12 ? "AM" : "PM");
                case 'S' -> out.append(two(t.getSecond()));
                case 'y' -> out.append(two(t.getYear() % 100));
                case 'Y' -> out.append(t.getYear());
                case 'f' -> out.append(String.format(Locale.ROOT, "%06d", t.getNano() / 1000));
                case 'w' -> out.append(t.getDayOfWeek().getValue() % 7);
                case 'u' -> out.append(t.getDayOfWeek().getValue());
                case 'F' -> out.append(t.toLocalDate());
                case 'T' -> out.append(two(t.getHour())).append(':').append(two(t.getMinute())).append(':').append(two(t.getSecond()));
                case '%' -> out.append('%');
                default -> out.append('%').append(d);
            }
        }
        return out.toString();
    }

    private static String two(int v) {
        return v < 10 ? "0" + v : Integer.toString(v);
    }

    /** Python's {@code json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=sortKeys)}. */
    static String toJson(Object x, Integer indent, boolean sortKeys) {
        StringBuilder out = new StringBuilder();
        write(out, x, indent, sortKeys, 0);
        return out.toString();
    }

    private static void newline(StringBuilder out, Integer indent, int depth) {
        out.append('\n').append(" ".repeat(indent * depth));
    }

    private static void write(StringBuilder out, Object x, Integer indent, boolean sortKeys, int depth) {
        switch (x) {
            case null -> out.append("null");
            case Boolean b -> out.append(b ? "true" : "false");
            case Double v -> out.append(pythonFloat(v));
            case Float v -> out.append(pythonFloat(v.doubleValue()));
            case Number n -> out.append(n);
            case CharSequence s -> quote(out, s.toString());
            case Map<?, ?> m -> {
                if (m.isEmpty()) {
                    out.append("{}");
                    return;
                }
                Iterable<? extends Map.Entry<?, ?>> entries = m.entrySet();
                if (sortKeys) {
                    entries = m.entrySet().stream().sorted((p, q) -> String.valueOf(p.getKey()).compareTo(String.valueOf(q.getKey()))).toList();
                }
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : entries) {
                    if (!first) {
                        out.append(indent == null ? ", " : ",");
                    }
                    first = false;
                    if (indent != null) {
                        newline(out, indent, depth + 1);
                    }
                    Object k = e.getKey();
                    quote(out, k instanceof Boolean b ? (b ? "true" : "false") : k == null ? "null" : k.toString());
                    out.append(": ");
                    write(out, e.getValue(), indent, sortKeys, depth + 1);
                }
                if (indent != null) {
                    newline(out, indent, depth);
                }
                out.append('}');
            }
            case Collection<?> c -> list(out, c.iterator(), c.isEmpty(), indent, sortKeys, depth);
            case Object[] a -> list(out, java.util.Arrays.asList(a).iterator(), a.length == 0, indent, sortKeys, depth);
            default -> quote(out, x.toString());
        }
    }

    private static void list(StringBuilder out, Iterator<?> it, boolean empty, Integer indent, boolean sortKeys, int depth) {
        if (empty) {
            out.append("[]");
            return;
        }
        out.append('[');
        boolean first = true;
        while (it.hasNext()) {
            if (!first) {
                out.append(indent == null ? ", " : ",");
            }
            first = false;
            if (indent != null) {
                newline(out, indent, depth + 1);
            }
            write(out, it.next(), indent, sortKeys, depth + 1);
        }
        if (indent != null) {
            newline(out, indent, depth);
        }
        out.append(']');
    }

    private static String pythonFloat(double v) {
        if (Double.isNaN(v)) {
            return "NaN";
        }
        if (Double.isInfinite(v)) {
            return v > 0 ? "Infinity" : "-Infinity";
        }
        if (v == Math.rint(v) && Math.abs(v) < 1e16) {
            return (long) v + ".0";
        }
        return Double.toString(v); // repr differs from Java only in exponent spelling
    }

    private static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** {@code tojson} as transformers defines it: {@code json.dumps} with {@code ensure_ascii=False}. */
    static final class ToJson implements Filter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return filter(var, interpreter, (Object[]) args, Map.of());
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object indent = kwargs.containsKey("indent") ? kwargs.get("indent") : args.length > 1 ? args[1] : null;
            Object sort = kwargs.getOrDefault("sort_keys", args.length > 3 ? args[3] : Boolean.FALSE);
            Integer n = indent == null ? null : indent instanceof Number num ? num.intValue() : Integer.parseInt(indent.toString());
            return toJson(var, n, Boolean.TRUE.equals(sort) || "True".equals(String.valueOf(sort)) || "true".equals(String.valueOf(sort)));
        }
    }
}
