// The generated fetch client names the DOM's BodyInit, which a Node program without lib "dom" lacks;
// Node's own fetch types say the same thing. Only needed to compile: no declaration in dist/ refers to it.
type BodyInit = NonNullable<RequestInit['body']>
