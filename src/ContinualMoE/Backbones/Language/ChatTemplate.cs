using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ContinualMoE.Backbones.Language;

/// <summary>One turn of a conversation: role ("system", "user", "assistant") and text.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// Renders a Hugging Face chat template (tokenizer_config.json's "chat_template", a Jinja template) for a list of
/// messages. transformers renders it with Jinja2 with trim_blocks and lstrip_blocks; this is an independent interpreter of
/// the subset chat templates use: text, {{ expressions }}, {% if/elif/else %}, {% for x in list %} with loop.first/last/
/// index/index0/length, {% set %} (also namespace attributes), whitespace control with '-', comments, string and list
/// literals, indexing and slicing, attribute access, == != &lt; &gt; &lt;= &gt;= in, and/or/not, + ~ concatenation, tests
/// (is defined, none, string), the filters trim/length/upper/lower/tojson/first/last/default/string, the string methods
/// strip/lstrip/rstrip/startswith/endswith/upper/lower/split, and raise_exception(). Anything else is a one-line error
/// naming the template's file.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Node> nodes;
    private readonly string source;

    private ChatTemplate(List<Node> nodes, string source)
    {
        this.nodes = nodes;
        this.source = source;
    }

    /// <summary>Parses <paramref name="template"/>; <paramref name="source"/> (the file) names errors.</summary>
    public static ChatTemplate Parse(string template, string source)
    {
        var tokens = Lex(template, source);
        var position = 0;
        var nodes = new Parser(tokens, source).ParseBody(ref position, []);
        if (position < tokens.Count) throw Error(source, $"unexpected {{% {tokens[position].Text} %}}");
        return new ChatTemplate(nodes, source);
    }

    /// <summary>The prompt text for <paramref name="messages"/>; <paramref name="variables"/> adds e.g. bos_token and eos_token.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, string?>? variables = null)
    {
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        foreach (var (name, value) in variables ?? new Dictionary<string, string?>()) scope[name] = value;
        var output = new StringBuilder();
        new Evaluator(source).Run(nodes, [scope], output);
        return output.ToString();
    }

    private static ContinualMoEException Error(string source, string problem) => ContinualMoEException.ForFile(source, $"chat template: {problem}");

    // ------------------------------------------------------------------ lexing: text, {{ }}, {% %}, {# #}

    private enum TokenKind { Text, Output, Statement }

    private sealed record Token(TokenKind Kind, string Text);

    private static List<Token> Lex(string template, string source)
    {
        var tokens = new List<Token>();
        var i = 0;
        var trimNextLeading = false;
        var afterBlock = false;
        while (i < template.Length)
        {
            var open = template.IndexOf('{', i);
            while (open >= 0 && open + 1 < template.Length && template[open + 1] is not ('{' or '%' or '#'))
                open = template.IndexOf('{', open + 1);
            if (open < 0 || open + 1 >= template.Length) open = template.Length;
            var text = template[i..open];
            var beginsLine = i == 0 || template[i - 1] == '\n';
            // trim_blocks: the first newline after a block tag is removed.
            if (afterBlock && text.StartsWith('\n'))
            {
                text = text[1..];
                beginsLine = true;
            }
            if (trimNextLeading) text = text.TrimStart();
            if (open == template.Length)
            {
                tokens.Add(new Token(TokenKind.Text, text));
                break;
            }
            var kind = template[open + 1];
            var close = kind switch { '{' => "}}", '%' => "%}", _ => "#}" };
            var end = template.IndexOf(close, open + 2, StringComparison.Ordinal);
            if (end < 0) throw Error(source, $"'{template[open..(open + 2)]}' at offset {open} is never closed");
            var inner = template[(open + 2)..end];
            var stripBefore = inner.StartsWith('-');
            var stripAfter = inner.EndsWith('-');
            if (stripBefore) text = text.TrimEnd();
            else if (kind is '%' or '#')
            {
                // lstrip_blocks: spaces and tabs from the start of the line up to a block tag are removed.
                var lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || beginsLine) && text[lineStart..].All(c => c is ' ' or '\t')) text = text[..lineStart];
            }
            tokens.Add(new Token(TokenKind.Text, text));
            inner = inner.Trim('-', '+').Trim();
            if (kind == '{') tokens.Add(new Token(TokenKind.Output, inner));
            else if (kind == '%') tokens.Add(new Token(TokenKind.Statement, inner));
            trimNextLeading = stripAfter;
            afterBlock = kind is '%' or '#';
            i = end + 2;
        }
        return tokens.Where(t => t.Kind != TokenKind.Text || t.Text.Length > 0).ToList();
    }

    // ------------------------------------------------------------------ the template tree

    private abstract record Node;
    private sealed record TextNode(string Text) : Node;
    private sealed record OutputNode(Expr Value) : Node;
    private sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else) : Node;
    private sealed record ForNode(string Variable, Expr Items, Expr? Filter, List<Node> Body) : Node;
    private sealed record SetNode(string Name, string? Attribute, Expr Value) : Node;

    private abstract record Expr;
    private sealed record Literal(object? Value) : Expr;
    private sealed record Name(string Identifier) : Expr;
    private sealed record ListExpr(List<Expr> Items) : Expr;
    private sealed record Attribute(Expr Target, string Member) : Expr;
    private sealed record Index(Expr Target, Expr Key) : Expr;
    private sealed record Slice(Expr Target, Expr? Start, Expr? Stop) : Expr;
    private sealed record Call(Expr Function, List<Expr> Arguments, Dictionary<string, Expr> Named) : Expr;
    private sealed record Filter(Expr Value, string Name, List<Expr> Arguments) : Expr;
    private sealed record Test(Expr Value, string Name, bool Negated) : Expr;
    private sealed record Unary(string Operator, Expr Operand) : Expr;
    private sealed record Binary(string Operator, Expr Left, Expr Right) : Expr;
    private sealed record Conditional(Expr Condition, Expr Then, Expr? Else) : Expr;

    private sealed class Parser(List<Token> tokens, string source)
    {
        /// <summary>Parses nodes until one of <paramref name="terminators"/> (a statement keyword) or the end.</summary>
        public List<Node> ParseBody(ref int position, string[] terminators)
        {
            var body = new List<Node>();
            while (position < tokens.Count)
            {
                var token = tokens[position];
                if (token.Kind == TokenKind.Text) { body.Add(new TextNode(token.Text)); position++; continue; }
                if (token.Kind == TokenKind.Output) { body.Add(new OutputNode(ParseExpression(token.Text))); position++; continue; }
                var keyword = token.Text.Split(' ', 2)[0];
                if (terminators.Contains(keyword)) return body;
                position++;
                body.Add(keyword switch
                {
                    "if" => ParseIf(token.Text[2..], ref position),
                    "for" => ParseFor(token.Text[3..], ref position),
                    "set" => ParseSet(token.Text[3..]),
                    _ => throw Error(source, $"unsupported statement {{% {token.Text} %}}"),
                });
            }
            if (terminators.Length > 0) throw Error(source, $"missing {{% {terminators[^1]} %}}");
            return body;
        }

        private Node ParseIf(string condition, ref int position)
        {
            var branches = new List<(Expr, List<Node>)>();
            var current = ParseExpression(condition);
            while (true)
            {
                branches.Add((current, ParseBody(ref position, ["elif", "else", "endif"])));
                var statement = tokens[position++].Text;
                var keyword = statement.Split(' ', 2)[0];
                if (keyword == "endif") return new IfNode(branches, null);
                if (keyword == "elif")
                {
                    current = ParseExpression(statement[4..]);
                    continue;
                }
                var otherwise = ParseBody(ref position, ["endif"]);
                position++;
                return new IfNode(branches, otherwise);
            }
        }

        private Node ParseFor(string header, ref int position)
        {
            var inAt = header.IndexOf(" in ", StringComparison.Ordinal);
            if (inAt < 0) throw Error(source, $"for loop '{header.Trim()}' has no 'in'");
            var variable = header[..inAt].Trim();
            var rest = header[(inAt + 4)..];
            Expr? filter = null;
            var ifAt = rest.IndexOf(" if ", StringComparison.Ordinal);
            if (ifAt >= 0)
            {
                filter = ParseExpression(rest[(ifAt + 4)..]);
                rest = rest[..ifAt];
            }
            var body = ParseBody(ref position, ["endfor"]);
            position++;
            return new ForNode(variable, ParseExpression(rest), filter, body);
        }

        private Node ParseSet(string statement)
        {
            var equals = statement.IndexOf('=');
            if (equals < 0) throw Error(source, $"set without '=': {statement.Trim()}");
            var target = statement[..equals].Trim();
            var value = ParseExpression(statement[(equals + 1)..]);
            var dot = target.IndexOf('.');
            return dot < 0 ? new SetNode(target, null, value) : new SetNode(target[..dot], target[(dot + 1)..], value);
        }

        public Expr ParseExpression(string text) => new ExpressionParser(text, source).ParseAll();
    }

    /// <summary>Precedence: if-else &lt; or &lt; and &lt; not &lt; comparison/in/is &lt; + - ~ &lt; unary - &lt; postfix (. [] () |).</summary>
    private sealed class ExpressionParser
    {
        private readonly List<string> tokens = [];
        private readonly string text;
        private readonly string source;
        private int position;

        public ExpressionParser(string text, string source)
        {
            this.text = text;
            this.source = source;
            var i = 0;
            while (i < text.Length)
            {
                var c = text[i];
                if (char.IsWhiteSpace(c)) { i++; continue; }
                if (c is '\'' or '"')
                {
                    var value = new StringBuilder("\"");
                    var j = i + 1;
                    while (j < text.Length && text[j] != c)
                    {
                        if (text[j] == '\\' && j + 1 < text.Length)
                        {
                            j++;
                            value.Append(text[j] switch { 'n' => '\n', 't' => '\t', _ => text[j] });
                        }
                        else value.Append(text[j]);
                        j++;
                    }
                    if (j >= text.Length) throw Error(source, $"unterminated string in '{text.Trim()}'");
                    tokens.Add(value.ToString());
                    i = j + 1;
                    continue;
                }
                if (char.IsLetterOrDigit(c) || c == '_')
                {
                    var j = i;
                    while (j < text.Length && (char.IsLetterOrDigit(text[j]) || text[j] == '_' || (char.IsDigit(c) && text[j] == '.'))) j++;
                    tokens.Add(text[i..j]);
                    i = j;
                    continue;
                }
                var two = i + 1 < text.Length ? text.Substring(i, 2) : "";
                if (two is "==" or "!=" or "<=" or ">=") { tokens.Add(two); i += 2; continue; }
                tokens.Add(c.ToString());
                i++;
            }
        }

        private string? Peek => position < tokens.Count ? tokens[position] : null;
        private bool Accept(string token) { if (Peek == token) { position++; return true; } return false; }
        private void Expect(string token)
        {
            if (!Accept(token)) throw Error(source, $"expected '{token}' in '{text.Trim()}'");
        }

        public Expr ParseAll()
        {
            var expr = ParseConditional();
            if (position < tokens.Count) throw Error(source, $"unexpected '{tokens[position]}' in '{text.Trim()}'");
            return expr;
        }

        private Expr ParseConditional()
        {
            var value = ParseOr();
            if (!Accept("if")) return value;
            var condition = ParseOr();
            return new Conditional(condition, value, Accept("else") ? ParseConditional() : null);
        }

        private Expr ParseOr()
        {
            var left = ParseAnd();
            while (Accept("or")) left = new Binary("or", left, ParseAnd());
            return left;
        }

        private Expr ParseAnd()
        {
            var left = ParseNot();
            while (Accept("and")) left = new Binary("and", left, ParseNot());
            return left;
        }

        private Expr ParseNot() => Accept("not") ? new Unary("not", ParseNot()) : ParseComparison();

        private Expr ParseComparison()
        {
            var left = ParseAdditive();
            while (true)
            {
                if (Peek is "==" or "!=" or "<" or ">" or "<=" or ">=")
                {
                    var op = tokens[position++];
                    left = new Binary(op, left, ParseAdditive());
                }
                else if (Peek == "in") { position++; left = new Binary("in", left, ParseAdditive()); }
                else if (Peek == "not" && position + 1 < tokens.Count && tokens[position + 1] == "in")
                {
                    position += 2;
                    left = new Unary("not", new Binary("in", left, ParseAdditive()));
                }
                else if (Accept("is"))
                {
                    var negated = Accept("not");
                    left = new Test(left, tokens[position++], negated);
                }
                else return left;
            }
        }

        private Expr ParseAdditive()
        {
            var left = ParseUnary();
            while (Peek is "+" or "-" or "~")
            {
                var op = tokens[position++];
                left = new Binary(op, left, ParseUnary());
            }
            return left;
        }

        private Expr ParseUnary() => Accept("-") ? new Unary("-", ParseUnary()) : ParsePostfix();

        private Expr ParsePostfix()
        {
            var expr = ParsePrimary();
            while (true)
            {
                if (Accept(".")) expr = new Attribute(expr, tokens[position++]);
                else if (Accept("["))
                {
                    Expr? start = Peek == ":" ? null : ParseConditional();
                    if (Accept(":"))
                    {
                        Expr? stop = Peek == "]" ? null : ParseConditional();
                        expr = new Slice(expr, start, stop);
                    }
                    else expr = new Index(expr, start!);
                    Expect("]");
                }
                else if (Accept("("))
                {
                    var (arguments, named) = ParseArguments();
                    expr = new Call(expr, arguments, named);
                }
                else if (Accept("|"))
                {
                    var name = tokens[position++];
                    var arguments = Accept("(") ? ParseArguments().Positional : [];
                    expr = new Filter(expr, name, arguments);
                }
                else return expr;
            }
        }

        private (List<Expr> Positional, Dictionary<string, Expr> Named) ParseArguments()
        {
            var positional = new List<Expr>();
            var named = new Dictionary<string, Expr>(StringComparer.Ordinal);
            while (!Accept(")"))
            {
                if (position + 1 < tokens.Count && tokens[position + 1] == "=" && char.IsLetter(tokens[position][0]))
                {
                    var name = tokens[position];
                    position += 2;
                    named[name] = ParseConditional();
                }
                else positional.Add(ParseConditional());
                if (Peek != ")") Expect(",");
            }
            return (positional, named);
        }

        private Expr ParsePrimary()
        {
            var token = Peek ?? throw Error(source, $"expression '{text.Trim()}' ends early");
            position++;
            if (token.StartsWith('"')) return new Literal(token[1..]);
            if (token == "(")
            {
                var inner = ParseConditional();
                Expect(")");
                return inner;
            }
            if (token == "[")
            {
                var items = new List<Expr>();
                while (!Accept("]"))
                {
                    items.Add(ParseConditional());
                    if (Peek != "]") Expect(",");
                }
                return new ListExpr(items);
            }
            if (char.IsDigit(token[0]))
                return token.Contains('.') ? new Literal(double.Parse(token, CultureInfo.InvariantCulture)) : new Literal(long.Parse(token, CultureInfo.InvariantCulture));
            return token switch
            {
                "true" or "True" => new Literal(true),
                "false" or "False" => new Literal(false),
                "none" or "None" => new Literal(null),
                _ when char.IsLetter(token[0]) || token[0] == '_' => new Name(token),
                _ => throw Error(source, $"unexpected '{token}' in '{text.Trim()}'"),
            };
        }
    }

    // ------------------------------------------------------------------ evaluation

    /// <summary>Jinja's undefined value: falsy, renders as empty, "is defined" is false.</summary>
    private sealed class Undefined
    {
        public static readonly Undefined Value = new();
        public override string ToString() => "";
    }

    private sealed class Evaluator(string source)
    {
        public void Run(List<Node> nodes, List<Dictionary<string, object?>> scopes, StringBuilder output)
        {
            foreach (var node in nodes)
            {
                switch (node)
                {
                    case TextNode text:
                        output.Append(text.Text);
                        break;
                    case OutputNode value:
                        output.Append(Render(Evaluate(value.Value, scopes)));
                        break;
                    case IfNode branch:
                        var taken = branch.Branches.FirstOrDefault(b => Truthy(Evaluate(b.Condition, scopes)));
                        var body = taken.Body ?? branch.Else;
                        if (body is not null) Run(body, scopes, output);
                        break;
                    case ForNode loop:
                        RunFor(loop, scopes, output);
                        break;
                    case SetNode set:
                        var assigned = Evaluate(set.Value, scopes);
                        if (set.Attribute is null) scopes[^1][set.Name] = assigned;
                        else if (Lookup(set.Name, scopes) is Dictionary<string, object?> target) target[set.Attribute] = assigned;
                        else throw Error(source, $"cannot set attribute '{set.Attribute}' of '{set.Name}', which is not a namespace");
                        break;
                }
            }
        }

        private void RunFor(ForNode loop, List<Dictionary<string, object?>> scopes, StringBuilder output)
        {
            var items = Evaluate(loop.Items, scopes) switch
            {
                List<object?> list => list,
                string s => s.Select(c => (object?)c.ToString()).ToList(),
                Dictionary<string, object?> d => d.Keys.Select(k => (object?)k).ToList(),
                Undefined or null => [],
                var other => throw Error(source, $"cannot loop over {Describe(other)}"),
            };
            if (loop.Filter is not null)
            {
                items = items.Where(item =>
                {
                    var probe = new Dictionary<string, object?>(StringComparer.Ordinal) { [loop.Variable] = item };
                    return Truthy(Evaluate(loop.Filter, [.. scopes, probe]));
                }).ToList();
            }
            for (var i = 0; i < items.Count; i++)
            {
                // Jinja's loop scope: assignments inside do not leak out (namespaces are how templates carry state).
                var scope = new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    [loop.Variable] = items[i],
                    ["loop"] = new Dictionary<string, object?>
                    {
                        ["index0"] = (long)i, ["index"] = (long)i + 1, ["first"] = i == 0, ["last"] = i == items.Count - 1,
                        ["length"] = (long)items.Count, ["previtem"] = i > 0 ? items[i - 1] : Undefined.Value,
                        ["nextitem"] = i + 1 < items.Count ? items[i + 1] : Undefined.Value,
                    },
                };
                Run(loop.Body, [.. scopes, scope], output);
            }
        }

        private static object? Lookup(string name, List<Dictionary<string, object?>> scopes)
        {
            for (var i = scopes.Count - 1; i >= 0; i--)
                if (scopes[i].TryGetValue(name, out var value)) return value;
            return Undefined.Value;
        }

        private object? Evaluate(Expr expr, List<Dictionary<string, object?>> scopes)
        {
            switch (expr)
            {
                case Literal literal: return literal.Value;
                case Name name: return Lookup(name.Identifier, scopes);
                case ListExpr list: return list.Items.Select(i => Evaluate(i, scopes)).ToList();
                case Attribute attribute: return Member(Evaluate(attribute.Target, scopes), attribute.Member);
                case Index index: return Item(Evaluate(index.Target, scopes), Evaluate(index.Key, scopes));
                case Slice slice: return SliceOf(Evaluate(slice.Target, scopes), slice.Start is null ? null : Evaluate(slice.Start, scopes), slice.Stop is null ? null : Evaluate(slice.Stop, scopes));
                case Call call: return Invoke(call, scopes);
                case Filter filter: return ApplyFilter(filter, scopes);
                case Test test: return RunTest(Evaluate(test.Value, scopes), test.Name) != test.Negated;
                case Unary { Operator: "not" } not: return !Truthy(Evaluate(not.Operand, scopes));
                case Unary negative: return Evaluate(negative.Operand, scopes) switch
                {
                    long l => -l,
                    double d => -d,
                    var other => throw Error(source, $"cannot negate {Describe(other)}"),
                };
                case Binary { Operator: "and" } and:
                    var left = Evaluate(and.Left, scopes);
                    return Truthy(left) ? Evaluate(and.Right, scopes) : left;
                case Binary { Operator: "or" } or:
                    var first = Evaluate(or.Left, scopes);
                    return Truthy(first) ? first : Evaluate(or.Right, scopes);
                case Binary binary: return Combine(binary.Operator, Evaluate(binary.Left, scopes), Evaluate(binary.Right, scopes));
                case Conditional conditional:
                    return Truthy(Evaluate(conditional.Condition, scopes))
                        ? Evaluate(conditional.Then, scopes)
                        : conditional.Else is null ? Undefined.Value : Evaluate(conditional.Else, scopes);
                default: throw Error(source, "unsupported expression");
            }
        }

        private object? Member(object? target, string member) => target switch
        {
            Dictionary<string, object?> d => d.TryGetValue(member, out var v) ? v : Undefined.Value,
            string s => new BoundMethod(s, member),
            _ => Undefined.Value,
        };

        private sealed record BoundMethod(string Target, string Name);

        private object? Item(object? target, object? key) => (target, key) switch
        {
            (Dictionary<string, object?> d, string k) => d.TryGetValue(k, out var v) ? v : Undefined.Value,
            (List<object?> list, long i) => (i < 0 ? list.Count + i : i) is var at && at >= 0 && at < list.Count ? list[(int)at] : Undefined.Value,
            (string s, long i) => (i < 0 ? s.Length + i : i) is var at && at >= 0 && at < s.Length ? s[(int)at].ToString() : Undefined.Value,
            _ => Undefined.Value,
        };

        private object? SliceOf(object? target, object? start, object? stop)
        {
            int Bound(object? value, int length, int fallback) => value is long l ? (int)Math.Clamp(l < 0 ? length + l : l, 0, length) : fallback;
            return target switch
            {
                List<object?> list => list.Skip(Bound(start, list.Count, 0)).Take(Math.Max(0, Bound(stop, list.Count, list.Count) - Bound(start, list.Count, 0))).ToList(),
                string s => s[Bound(start, s.Length, 0)..Math.Max(Bound(start, s.Length, 0), Bound(stop, s.Length, s.Length))],
                _ => throw Error(source, $"cannot slice {Describe(target)}"),
            };
        }

        private object? Invoke(Call call, List<Dictionary<string, object?>> scopes)
        {
            var arguments = call.Arguments.Select(a => Evaluate(a, scopes)).ToList();
            if (call.Function is Name { Identifier: "raise_exception" })
                throw Error(source, $"the template refused the messages: {Render(arguments.FirstOrDefault())}");
            if (call.Function is Name { Identifier: "namespace" })
                return call.Named.ToDictionary(p => p.Key, p => Evaluate(p.Value, scopes), StringComparer.Ordinal);
            if (Evaluate(call.Function, scopes) is BoundMethod method)
            {
                var s = method.Target;
                string Argument(int i) => arguments.Count > i ? Render(arguments[i]) : "";
                return method.Name switch
                {
                    "strip" => arguments.Count > 0 ? s.Trim(Argument(0).ToCharArray()) : s.Trim(),
                    "lstrip" => arguments.Count > 0 ? s.TrimStart(Argument(0).ToCharArray()) : s.TrimStart(),
                    "rstrip" => arguments.Count > 0 ? s.TrimEnd(Argument(0).ToCharArray()) : s.TrimEnd(),
                    "startswith" => s.StartsWith(Argument(0), StringComparison.Ordinal),
                    "endswith" => s.EndsWith(Argument(0), StringComparison.Ordinal),
                    "upper" => s.ToUpperInvariant(),
                    "lower" => s.ToLowerInvariant(),
                    "split" => (arguments.Count > 0 ? s.Split(Argument(0)) : s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).Select(p => (object?)p).ToList(),
                    _ => throw Error(source, $"unsupported string method '{method.Name}'"),
                };
            }
            throw Error(source, $"unsupported function call");
        }

        private object? ApplyFilter(Filter filter, List<Dictionary<string, object?>> scopes)
        {
            var value = Evaluate(filter.Value, scopes);
            return filter.Name switch
            {
                "trim" => Render(value).Trim(),
                "upper" => Render(value).ToUpperInvariant(),
                "lower" => Render(value).ToLowerInvariant(),
                "string" => Render(value),
                "length" or "count" => value switch
                {
                    string s => (long)s.Length,
                    List<object?> l => (long)l.Count,
                    Dictionary<string, object?> d => (long)d.Count,
                    _ => 0L,
                },
                "first" => value is List<object?> { Count: > 0 } f ? f[0] : Undefined.Value,
                "last" => value is List<object?> { Count: > 0 } l2 ? l2[^1] : Undefined.Value,
                "default" => value is Undefined ? (filter.Arguments.Count > 0 ? Evaluate(filter.Arguments[0], scopes) : "") : value,
                "tojson" => JsonSerializer.Serialize(ToPlain(value)),
                _ => throw Error(source, $"unsupported filter '{filter.Name}'"),
            };
        }

        private static object? ToPlain(object? value) => value switch
        {
            Undefined => null,
            List<object?> list => list.Select(ToPlain).ToList(),
            Dictionary<string, object?> d => d.ToDictionary(p => p.Key, p => ToPlain(p.Value)),
            _ => value,
        };

        private bool RunTest(object? value, string name) => name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "string" => value is string,
            "number" => value is long or double,
            "mapping" => value is Dictionary<string, object?>,
            "iterable" or "sequence" => value is List<object?> or string,
            "true" => value is true,
            "false" => value is false,
            _ => throw Error(source, $"unsupported test 'is {name}'"),
        };

        private object? Combine(string op, object? left, object? right)
        {
            switch (op)
            {
                case "==": return ValueEquals(left, right);
                case "!=": return !ValueEquals(left, right);
                case "in":
                    return right switch
                    {
                        string s => s.Contains(Render(left), StringComparison.Ordinal),
                        List<object?> list => list.Any(item => ValueEquals(item, left)),
                        Dictionary<string, object?> d => left is string key && d.ContainsKey(key),
                        _ => false,
                    };
                case "~": return Render(left) + Render(right);
                case "+" when left is string || right is string: return Render(left) + Render(right);
                case "+" when left is List<object?> a && right is List<object?> b: return a.Concat(b).ToList();
            }
            if (ToNumber(left) is not { } x || ToNumber(right) is not { } y)
                throw Error(source, $"cannot apply '{op}' to {Describe(left)} and {Describe(right)}");
            var integers = left is long && right is long;
            return op switch
            {
                "+" => integers ? (long)(x + y) : x + y,
                "-" => integers ? (long)(x - y) : x - y,
                "<" => x < y,
                ">" => x > y,
                "<=" => x <= y,
                ">=" => x >= y,
                _ => throw Error(source, $"unsupported operator '{op}'"),
            };
        }

        private static double? ToNumber(object? value) => value switch { long l => l, double d => d, bool b => b ? 1 : 0, _ => null };

        private static bool ValueEquals(object? a, object? b)
        {
            if (ToNumber(a) is { } x && ToNumber(b) is { } y && a is not bool && b is not bool) return x == y;
            if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
            return Equals(a, b);
        }

        private static bool Truthy(object? value) => value switch
        {
            null or Undefined => false,
            bool b => b,
            long l => l != 0,
            double d => d != 0,
            string s => s.Length > 0,
            List<object?> list => list.Count > 0,
            Dictionary<string, object?> d => d.Count > 0,
            _ => true,
        };

        private static string Render(object? value) => value switch
        {
            null => "None",
            Undefined => "",
            bool b => b ? "True" : "False",
            double d => d.ToString(CultureInfo.InvariantCulture),
            long l => l.ToString(CultureInfo.InvariantCulture),
            string s => s,
            _ => JsonSerializer.Serialize(ToPlain(value)),
        };

        private static string Describe(object? value) => value switch
        {
            null => "none",
            Undefined => "an undefined value",
            string => "a string",
            List<object?> => "a list",
            Dictionary<string, object?> => "a mapping",
            _ => value.GetType().Name,
        };
    }
}
