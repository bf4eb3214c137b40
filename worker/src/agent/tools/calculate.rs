//! `calculate`: arithmetic evaluated exactly, so the model does not compute in
//! its head. A small recursive-descent parser: numbers, `+ - * / % ^`,
//! parentheses, a fixed set of functions and the constants `pi` and `e`; no
//! variables, no assignment, no strings; nesting bounded.

/// Evaluates an arithmetic expression (a small recursive-descent parser: no
/// variables, no assignment, no strings).
pub fn calculate(expr: &str) -> Result<f64, String> {
    if expr.is_empty() {
        return Err("expression is empty".into());
    }
    if expr.chars().count() > 1_000 {
        return Err("expression is longer than 1000 characters".into());
    }
    let tokens = lex(expr)?;
    let mut p = Parser { tokens, pos: 0, depth: 0 };
    let v = p.expr()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected {} after the expression", p.tokens[p.pos].describe()));
    }
    if !v.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(v)
}

/// Integers print without a fraction; everything else as the shortest exact decimal.
pub fn format_number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(char),
    LParen,
    RParen,
    Comma,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(n) => format!("number {n}"),
            Tok::Ident(s) => format!("name {s:?}"),
            Tok::Op(c) => format!("'{c}'"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
        }
    }
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // An exponent: e/E, optional sign, digits.
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Tok::Num(text.parse().map_err(|_| format!("invalid number {text:?}"))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect::<String>().to_ascii_lowercase()));
        } else {
            out.push(match c {
                '+' | '-' | '*' | '/' | '%' | '^' => Tok::Op(c),
                '×' => Tok::Op('*'),
                '÷' => Tok::Op('/'),
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                ',' => Tok::Comma,
                other => return Err(format!("unexpected character {other:?}")),
            });
            i += 1;
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 100;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err("expression is nested too deeply".into()) } else { Ok(()) }
    }

    // expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Result<f64, String> {
        self.enter()?;
        let mut v = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.term()?;
            v = if op == '+' { v + r } else { v - r };
        }
        self.depth -= 1;
        Ok(v)
    }

    // term := unary (('*' | '/' | '%') unary)*
    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(Tok::Op(op @ ('*' | '/' | '%'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.unary()?;
            v = match op {
                '*' => v * r,
                _ if r == 0.0 => return Err("division by zero".into()),
                '/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    // unary := ('-' | '+') unary | power     (so -2^2 = -4)
    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(Tok::Op('-')) => {
                self.pos += 1;
                self.enter()?;
                let v = -self.unary()?;
                self.depth -= 1;
                Ok(v)
            }
            Some(Tok::Op('+')) => {
                self.pos += 1;
                self.enter()?;
                let v = self.unary()?;
                self.depth -= 1;
                Ok(v)
            }
            _ => self.power(),
        }
    }

    // power := primary ('^' unary)?     (right-associative)
    fn power(&mut self) -> Result<f64, String> {
        let base = self.primary()?;
        if let Some(Tok::Op('^')) = self.peek() {
            self.pos += 1;
            self.enter()?;
            let exp = self.unary()?;
            self.depth -= 1;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(n),
            Some(Tok::LParen) => {
                let v = self.expr()?;
                match self.next() {
                    Some(Tok::RParen) => Ok(v),
                    _ => Err("missing ')'".into()),
                }
            }
            Some(Tok::Ident(name)) => {
                if self.peek() == Some(&Tok::LParen) {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if self.peek() == Some(&Tok::RParen) {
                        self.pos += 1;
                    } else {
                        loop {
                            args.push(self.expr()?);
                            match self.next() {
                                Some(Tok::Comma) => continue,
                                Some(Tok::RParen) => break,
                                _ => return Err(format!("missing ')' after the arguments of {name}")),
                            }
                        }
                    }
                    apply_function(&name, &args)
                } else {
                    match name.as_str() {
                        "pi" => Ok(std::f64::consts::PI),
                        "e" => Ok(std::f64::consts::E),
                        other => Err(format!("unknown name {other:?} (variables are not supported)")),
                    }
                }
            }
            Some(t) => Err(format!("unexpected {}", t.describe())),
            None => Err("the expression ends too early".into()),
        }
    }
}

fn apply_function(name: &str, args: &[f64]) -> Result<f64, String> {
    let one = |f: fn(f64) -> f64| -> Result<f64, String> {
        match args {
            [x] => Ok(f(*x)),
            _ => Err(format!("{name} takes one argument")),
        }
    };
    match name {
        "sqrt" => one(f64::sqrt),
        "abs" => one(f64::abs),
        "sin" => one(f64::sin),
        "cos" => one(f64::cos),
        "tan" => one(f64::tan),
        "asin" => one(f64::asin),
        "acos" => one(f64::acos),
        "atan" => one(f64::atan),
        "ln" => one(f64::ln),
        "log" | "log10" => one(f64::log10),
        "log2" => one(f64::log2),
        "exp" => one(f64::exp),
        "floor" => one(f64::floor),
        "ceil" => one(f64::ceil),
        "round" => one(f64::round),
        "min" | "max" if !args.is_empty() => {
            let fold = if name == "min" { f64::min } else { f64::max };
            Ok(args[1..].iter().fold(args[0], |a, b| fold(a, *b)))
        }
        "pow" => match args {
            [x, y] => Ok(x.powf(*y)),
            _ => Err("pow takes two arguments".into()),
        },
        "min" | "max" => Err(format!("{name} needs at least one argument")),
        other => Err(format!("unknown function {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calculate_arithmetic() {
        let ok = |e: &str| calculate(e).unwrap();
        assert_eq!(ok("1 + 2 * 3"), 7.0);
        assert_eq!(ok("(1 + 2) * 3"), 9.0);
        assert_eq!(ok("2 ^ 3 ^ 2"), 512.0);
        assert_eq!(ok("-2 ^ 2"), -4.0);
        assert_eq!(ok("10 % 4"), 2.0);
        assert_eq!(ok("1.5e3 / 3"), 500.0);
        assert_eq!(ok("sqrt(16) + abs(-2) + max(1, 5, 3)"), 11.0);
        assert!((ok("2 * pi") - std::f64::consts::TAU).abs() < 1e-12);
        assert_eq!(ok("--3"), 3.0);
        assert_eq!(format_number(ok("7 / 2")), "3.5");
        assert_eq!(format_number(ok("2^10")), "1024");
    }

    #[test]
    fn calculate_errors_are_text() {
        for bad in ["", "1 / 0", "5 % 0", "x + 1", "1 +", "(1 + 2", "2 ** 3", "\"a\"", "a = 1", "foo(1)", "sqrt(1, 2)"]
        {
            assert!(calculate(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(calculate(&"(".repeat(500)).unwrap_err().contains("nested"));
        assert!(calculate("sqrt(-1)").is_err(), "NaN is refused");
    }
}
