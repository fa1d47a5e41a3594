package dev.tandem.transformer.chat;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * The Python {@code str} and {@code dict} methods chat templates call ({@code content.startswith('<tool_response>')},
 * {@code content.split('</think>')[-1].lstrip('\n')}, {@code message.get('x')}), which jinjava would otherwise look
 * up as Java methods (there is no {@code String.startswith}, and Java's {@code split} takes a regex). Only
 * {@link #invoke} resolves anything; every other call falls through to jinjava's own resolvers.
 */
final class PythonMethods extends ELResolver {

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(method instanceof String name)) {
            return null;
        }
        Object[] args = params == null ? new Object[0] : params;
        Object result;
        if (base instanceof String s) {
            result = string(s, name, args);
        } else if (base instanceof Map<?, ?> m) {
            result = map(m, name, args);
        } else {
            return null;
        }
        if (result == NOT_MINE) {
            return null;
        }
        context.setPropertyResolved(true);
        return result;
    }

    private static final Object NOT_MINE = new Object();

    private static Object string(String s, String name, Object[] a) {
        return switch (name) {
            case "startswith" -> a.length >= 1 ? anyAffix(s, a[0], true) : NOT_MINE;
            case "endswith" -> a.length >= 1 ? anyAffix(s, a[0], false) : NOT_MINE;
            case "strip" -> rstrip(lstrip(s, chars(a)), chars(a));
            case "lstrip" -> lstrip(s, chars(a));
            case "rstrip" -> rstrip(s, chars(a));
            case "split" -> split(s, a.length >= 1 ? a[0] : null, a.length >= 2 ? toInt(a[1]) : -1);
            case "upper" -> s.toUpperCase(Locale.ROOT);
            case "lower" -> s.toLowerCase(Locale.ROOT);
            case "title" -> title(s);
            case "capitalize" -> s.isEmpty() ? s
                    : s.substring(0, s.offsetByCodePoints(0, 1)).toUpperCase(Locale.ROOT)
                            + s.substring(s.offsetByCodePoints(0, 1)).toLowerCase(Locale.ROOT);
            case "replace" -> a.length >= 2 ? replace(s, str(a[0]), str(a[1]), a.length >= 3 ? toInt(a[2]) : -1) : NOT_MINE;
            case "find" -> a.length >= 1 ? (long) s.indexOf(str(a[0])) : NOT_MINE;
            case "count" -> a.length >= 1 ? count(s, str(a[0])) : NOT_MINE;
            case "join" -> a.length == 1 && a[0] instanceof Collection<?> c ? join(s, c) : NOT_MINE;
            case "isspace" -> !s.isEmpty() && s.chars().allMatch(Character::isWhitespace);
            case "isdigit" -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
            default -> NOT_MINE;
        };
    }

    private static Object map(Map<?, ?> m, String name, Object[] a) {
        return switch (name) {
            case "get" -> a.length == 1 ? m.get(a[0]) : a.length == 2 ? (m.containsKey(a[0]) ? m.get(a[0]) : a[1]) : NOT_MINE;
            case "keys" -> a.length == 0 ? new ArrayList<>(m.keySet()) : NOT_MINE;
            case "values" -> a.length == 0 ? new ArrayList<>(m.values()) : NOT_MINE;
            case "items" -> {
                if (a.length != 0) {
                    yield NOT_MINE;
                }
                List<List<Object>> items = new ArrayList<>();
                m.forEach((k, v) -> items.add(java.util.Arrays.asList(k, v)));
                yield items;
            }
            default -> NOT_MINE;
        };
    }

    private static String str(Object o) {
        return o == null ? "None" : o.toString();
    }

    private static int toInt(Object o) {
        return o instanceof Number n ? n.intValue() : Integer.parseInt(str(o));
    }

    private static boolean anyAffix(String s, Object affix, boolean prefix) {
        if (affix instanceof Collection<?> c) {
            for (Object o : c) {
                if (prefix ? s.startsWith(str(o)) : s.endsWith(str(o))) {
                    return true;
                }
            }
            return false;
        }
        return prefix ? s.startsWith(str(affix)) : s.endsWith(str(affix));
    }

    /** The characters to strip, or null for Python's default (whitespace). */
    private static String chars(Object[] a) {
        return a.length == 0 || a[0] == null ? null : str(a[0]);
    }

    private static boolean strips(int cp, String chars) {
        return chars == null ? Character.isWhitespace(cp) || Character.isSpaceChar(cp) : chars.indexOf(cp) >= 0;
    }

    private static String lstrip(String s, String chars) {
        int i = 0;
        while (i < s.length()) {
            int cp = s.codePointAt(i);
            if (!strips(cp, chars)) {
                break;
            }
            i += Character.charCount(cp);
        }
        return s.substring(i);
    }

    private static String rstrip(String s, String chars) {
        int end = s.length();
        while (end > 0) {
            int cp = s.codePointBefore(end);
            if (!strips(cp, chars)) {
                break;
            }
            end -= Character.charCount(cp);
        }
        return s.substring(0, end);
    }

    /** Python's {@code str.split}: a literal separator, or runs of whitespace without one. */
    static List<String> split(String s, Object sep, int maxSplit) {
        List<String> parts = new ArrayList<>();
        if (sep == null) {
            int i = 0;
            int n = s.length();
            while (true) {
                while (i < n && Character.isWhitespace(s.charAt(i))) {
                    i++;
                }
                if (i >= n) {
                    break;
                }
                if (maxSplit >= 0 && parts.size() == maxSplit) {
                    parts.add(rstrip(s.substring(i), null));
                    break;
                }
                int j = i;
                while (j < n && !Character.isWhitespace(s.charAt(j))) {
                    j++;
                }
                parts.add(s.substring(i, j));
                i = j;
            }
            return parts;
        }
        String d = str(sep);
        if (d.isEmpty()) {
            throw new IllegalArgumentException("empty separator");
        }
        int from = 0;
        while (maxSplit < 0 || parts.size() < maxSplit) {
            int at = s.indexOf(d, from);
            if (at < 0) {
                break;
            }
            parts.add(s.substring(from, at));
            from = at + d.length();
        }
        parts.add(s.substring(from));
        return parts;
    }

    private static String replace(String s, String old, String replacement, int count) {
        if (count < 0) {
            return s.replace(old, replacement);
        }
        StringBuilder out = new StringBuilder();
        int from = 0;
        for (int done = 0; done < count; done++) {
            int at = old.isEmpty() ? (from <= s.length() ? from : -1) : s.indexOf(old, from);
            if (at < 0) {
                break;
            }
            out.append(s, from, at).append(replacement);
            if (old.isEmpty()) {
                if (at < s.length()) {
                    out.append(s.charAt(at));
                }
                from = at + 1;
            } else {
                from = at + old.length();
            }
        }
        if (from <= s.length()) {
            out.append(s.substring(from));
        }
        return out.toString();
    }

    private static long count(String s, String sub) {
        if (sub.isEmpty()) {
            return s.codePointCount(0, s.length()) + 1L;
        }
        long n = 0;
        for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) {
            n++;
        }
        return n;
    }

    private static String join(String sep, Collection<?> items) {
        StringBuilder out = new StringBuilder();
        Iterator<?> it = items.iterator();
        while (it.hasNext()) {
            out.append(str(it.next()));
            if (it.hasNext()) {
                out.append(sep);
            }
        }
        return out.toString();
    }

    private static String title(String s) {
        StringBuilder out = new StringBuilder(s.length());
        boolean previousCased = false;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            boolean cased = Character.isLetter(cp);
            out.appendCodePoint(cased ? (previousCased ? Character.toLowerCase(cp) : Character.toTitleCase(cp)) : cp);
            previousCased = cased;
            i += Character.charCount(cp);
        }
        return out.toString();
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return false;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
    }
}
